"""Listings of Google Cloud Storage and Azure Blob Storage that give every name as the store
holds it.

obstore parses each listed name as an ``object_store`` path, and a name it cannot hold (an
empty segment as in ``a//b``, a ``.`` or ``..`` segment) fails the listing of the whole prefix
(obstore 0.12.1; developmentseed/obstore#429, still open): one odd object would stop the run.
It also drops a folder marker's trailing '/'. So the stores are listed through their own
APIs here, names untouched, and the planners skip and count what is not a valid path (SPEC
§3, §7) as they do on S3. GETs and HEADs of valid names stay on obstore.

* GCS: the XML API's ``list-type=2`` listing (the one obstore uses, so the listed etags are
  those its GETs compare with), authorised by google-auth's bearer tokens, or unsigned to
  ``STORAGE_EMULATOR_HOST``;
* Azure: ``azure-storage-blob`` (account key, SAS, or azure-identity's default chain).
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from sync_service.errors import StorageError

#: Read-only access is all a source needs.
GCS_READ_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
GCS_ENDPOINT = "https://storage.googleapis.com"


@dataclass(frozen=True)
class Listed:
    """One object of a listing, its name exactly as the store holds it."""

    key: str
    size: int
    etag: str
    last_modified: datetime


#: One page as the store sends it: the objects, and the folders (ending in the delimiter).
RawPage = tuple[list[Listed], list[str]]


class RawListing(Protocol):
    """A store's own listing below a prefix, page by page, names raw."""

    def pages(self, prefix: str, *, start_after: str = "", delimiter: str = "",
              page_size: int = 1000) -> Iterator[RawPage]:
        """The store's pages below ``prefix`` (after ``start_after`` where the store can)."""
        ...


def retrying_session(session: requests.Session, max_retries: int) -> requests.Session:
    """``session`` retrying throttling, 5xx and connection errors with backoff (as obstore does)."""
    retry = Retry(total=max_retries, backoff_factor=0.2, status_forcelist=(429, 500, 502, 503, 504),
                  allowed_methods=frozenset({"GET"}), raise_on_status=False)
    for scheme in ("http://", "https://"):
        session.mount(scheme, HTTPAdapter(max_retries=retry))
    return session


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # GCS answers in S3's namespace, the emulator in none


def _text(element: ElementTree.Element, name: str) -> str:
    for child in element:
        if _local(child.tag) == name:
            return child.text or ""
    return ""


def _moment(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class GcsXmlListing:
    """A GCS bucket listed through the XML API (``GET /{bucket}?list-type=2``)."""

    def __init__(self, bucket: str, session: requests.Session, *, endpoint: str = GCS_ENDPOINT,
                 timeout: float = 60.0) -> None:
        self.bucket = bucket
        self.session = session
        self.url = f"{endpoint.rstrip('/')}/{quote(bucket, safe='')}"
        self.timeout = timeout

    def pages(self, prefix: str, *, start_after: str = "", delimiter: str = "",
              page_size: int = 1000) -> Iterator[RawPage]:
        """The bucket's pages below ``prefix`` after ``start_after``, names raw."""
        # Names raw, as obstore lists them: ``encoding-type=url`` is not honoured by the emulator
        # (nothing to test it on), and Google documents the XML API's limit itself (names with
        # characters XML 1.0 cannot carry are to be avoided).
        params = {"list-type": "2", "prefix": prefix, "max-keys": str(page_size)}
        if delimiter:
            params["delimiter"] = delimiter
        if start_after:
            params["start-after"] = start_after
        while True:
            try:
                response = self.session.get(self.url, params=params, timeout=(10, self.timeout))
            except requests.RequestException as exc:
                raise StorageError(f"listing gs://{self.bucket}/{prefix}: {type(exc).__name__}: {exc}",
                                   retryable=True) from exc
            except Exception as exc:  # google-auth's refresh errors (no credentials, a bad key)
                raise StorageError(f"listing gs://{self.bucket}/{prefix}: {type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
            if response.status_code != 200:
                raise StorageError(f"listing gs://{self.bucket}/{prefix}: HTTP {response.status_code} "
                                   f"{_gcs_error(response.content)}",
                                   retryable=response.status_code not in (400, 401, 403, 404))
            root = ElementTree.fromstring(response.content)
            objects: list[Listed] = []
            folders: list[str] = []
            for element in root:
                tag = _local(element.tag)
                if tag == "Contents":
                    objects.append(Listed(_text(element, "Key"), int(_text(element, "Size") or 0),
                                          _text(element, "ETag").strip('"'),
                                          _moment(_text(element, "LastModified"))))
                elif tag == "CommonPrefixes":
                    folders.append(_text(element, "Prefix"))
            yield objects, folders
            token = _text(root, "NextContinuationToken")
            if _text(root, "IsTruncated").lower() != "true" or not token:
                return
            params["continuation-token"] = token


def _gcs_error(body: bytes) -> str:
    """The code and message of a GCS XML error answer (never the request, which may be signed)."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return ""
    return f"{_text(root, 'Code')}: {_text(root, 'Message')}".strip(": ")


def gcs_session(*, credentials_file: str = "", emulator: bool = False, max_retries: int = 3) -> requests.Session:
    """An HTTP session for GCS: google-auth's credentials (``credentials_file``, else Google's
    default chain: ``GOOGLE_APPLICATION_CREDENTIALS``, the metadata server), none for the emulator."""
    if emulator:
        return retrying_session(requests.Session(), max_retries)
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials: Any
    if credentials_file:
        credentials, _ = google.auth.load_credentials_from_file(credentials_file, scopes=[GCS_READ_SCOPE])
    else:
        credentials, _ = google.auth.default(scopes=[GCS_READ_SCOPE])
    return retrying_session(AuthorizedSession(credentials), max_retries)


class AzureBlobListing:
    """An Azure container listed through ``azure-storage-blob``."""

    def __init__(self, client: Any) -> None:
        self.client = client  # azure.storage.blob.ContainerClient

    def pages(self, prefix: str, *, start_after: str = "", delimiter: str = "",
              page_size: int = 1000) -> Iterator[RawPage]:
        """The container's pages below ``prefix``, names raw (Azure lists from the start: the
        caller drops what is not after ``start_after``)."""
        from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
        from azure.storage.blob import BlobPrefix

        what = f"listing az://{self.client.container_name}/{prefix}"
        try:
            if delimiter:
                listing = self.client.walk_blobs(name_starts_with=prefix or None, delimiter=delimiter,
                                                 results_per_page=page_size)
            else:
                listing = self.client.list_blobs(name_starts_with=prefix or None, results_per_page=page_size)
            for page in listing.by_page():
                objects: list[Listed] = []
                folders: list[str] = []
                for item in page:
                    if isinstance(item, BlobPrefix):
                        folders.append(str(item.name))
                    else:
                        objects.append(Listed(str(item.name), int(item.size or 0), str(item.etag or "").strip('"'),
                                              item.last_modified))
                yield objects, folders
        except ClientAuthenticationError as exc:
            raise StorageError(f"{what}: {type(exc).__name__}: {_first_line(exc)}") from exc
        except HttpResponseError as exc:
            raise StorageError(f"{what}: HTTP {exc.status_code} {getattr(exc, 'error_code', '') or ''}".rstrip(),
                               retryable=exc.status_code not in (400, 401, 403, 404)) from exc
        except AzureError as exc:
            raise StorageError(f"{what}: {type(exc).__name__}: {_first_line(exc)}", retryable=True) from exc


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else ""


def azure_container_client(settings: dict[str, Any], container: str, *, max_retries: int = 3,
                           read_timeout: float = 60.0) -> Any:
    """A ``ContainerClient`` from the store's settings (those of obstore's ``AzureStore``):
    the account key or SAS they name, else azure-identity's default chain (environment,
    workload identity, managed identity, the Azure CLI's login)."""
    from azure.storage.blob import ContainerClient

    account = str(settings.get("account_name", ""))
    url = str(settings.get("endpoint") or f"https://{account}.blob.core.windows.net")
    credential: Any
    if settings.get("account_key"):
        from azure.core.credentials import AzureNamedKeyCredential
        credential = AzureNamedKeyCredential(account, str(settings["account_key"]))
    elif settings.get("sas_key"):
        from azure.core.credentials import AzureSasCredential
        credential = AzureSasCredential(str(settings["sas_key"]))
    else:
        from azure.identity import DefaultAzureCredential
        credential = DefaultAzureCredential()
    return ContainerClient(url, container, credential=credential, retry_total=max_retries,
                           connection_timeout=10, read_timeout=read_timeout)
