"""Azure Blob Storage as a source (``SOURCE_URL=az://container/prefix``): GETs and HEADs through
obstore, listings through ``azure-storage-blob`` (``listing.py``).

Credentials as Azure's own tools take them: ``AZURE_STORAGE_CONNECTION_STRING`` (its
``AccountName``, ``AccountKey`` or ``SharedAccessSignature``, and ``BlobEndpoint``, which is
how Azurite is reached; ``UseDevelopmentStorage=true`` is Azurite on its usual port), else
``AZURE_STORAGE_ACCOUNT`` with ``AZURE_STORAGE_KEY`` or ``AZURE_STORAGE_SAS_TOKEN``, else
each library's default chain (managed identity, workload identity, the Azure CLI's login).
"""

from __future__ import annotations

from typing import Any

from obstore.store import AzureStore

from sync_service.clients.storage.gcs import client_options, retry_config
from sync_service.clients.storage.listing import AzureBlobListing, azure_container_client
from sync_service.clients.storage.obstore_store import ObstoreStore
from sync_service.errors import ConfigError
from sync_service.models.config import SyncConfig

#: Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")
AZURITE_BLOB_ENDPOINT = "http://127.0.0.1:10000/devstoreaccount1"


def parse_connection_string(value: str) -> dict[str, str]:
    """An Azure connection string's settings by lower-case name (``accountname``, …)."""
    settings: dict[str, str] = {}
    for part in value.split(";"):
        name, sep, setting = part.partition("=")
        if name.strip() and sep:
            settings[name.strip().lower()] = setting.strip()
        elif part.strip():
            # Never echo the part: it may be a key.
            raise ConfigError("AZURE_STORAGE_CONNECTION_STRING must be Name=value pairs separated by ';'")
    return settings


def azure_settings(config: SyncConfig) -> dict[str, Any]:
    """obstore's ``AzureStore`` settings from the configuration."""
    settings: dict[str, Any] = {}
    if config.azure_storage_connection_string:
        parsed = parse_connection_string(config.azure_storage_connection_string)
        if parsed.get("usedevelopmentstorage", "").lower() == "true":
            parsed = {"accountname": AZURITE_ACCOUNT, "accountkey": AZURITE_KEY,
                      "blobendpoint": AZURITE_BLOB_ENDPOINT, **parsed}
        account = parsed.get("accountname", "")
        if parsed.get("blobendpoint"):
            settings["endpoint"] = parsed["blobendpoint"].rstrip("/")
        if parsed.get("accountkey"):
            settings["account_key"] = parsed["accountkey"]
        elif parsed.get("sharedaccesssignature"):
            settings["sas_key"] = parsed["sharedaccesssignature"].lstrip("?")
        if not account and "endpoint" not in settings:
            raise ConfigError("AZURE_STORAGE_CONNECTION_STRING names no AccountName nor BlobEndpoint")
        if account:
            settings["account_name"] = account
        return settings
    if not config.azure_storage_account:
        raise ConfigError("SOURCE_URL=az://… needs AZURE_STORAGE_CONNECTION_STRING or "
                          "AZURE_STORAGE_ACCOUNT (with AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN, "
                          "or a managed identity)")
    settings["account_name"] = config.azure_storage_account
    if config.azure_storage_key:
        settings["account_key"] = config.azure_storage_key
    elif config.azure_storage_sas_token:
        settings["sas_key"] = config.azure_storage_sas_token
    return settings


def azure_store(config: SyncConfig) -> ObstoreStore:
    """The container of ``SOURCE_URL=az://…`` with Azure's usual credentials."""
    config.require_bucket()
    settings = azure_settings(config)
    try:
        client = AzureStore(config.customer_s3_bucket, client_options=client_options(
            config, allow_http=str(settings.get("endpoint", "")).startswith("http://")),
            retry_config=retry_config(config), **settings)
        container = azure_container_client(settings, config.customer_s3_bucket, max_retries=config.max_retries,
                                           read_timeout=max(config.s3_read_timeout, 1))
    except Exception as exc:  # obstore's own; its text may quote a setting, so only its kind
        raise ConfigError(f"SOURCE_URL=az://{config.customer_s3_bucket}: the Azure settings are unusable "
                          f"({type(exc).__name__})") from exc
    return ObstoreStore(client, config.customer_s3_bucket, config.customer_s3_prefix, scheme="az",
                        listing=AzureBlobListing(container))
