"""SOURCE_URL and the clouds' credentials: parsing, clear errors, secrets kept out of output."""

from __future__ import annotations

import subprocess
import sys

import pytest

from devtools.local_servers import REPO_ROOT
from sync_service.clients.storage import open_store
from sync_service.clients.storage.azure import AZURITE_KEY, azure_settings
from sync_service.clients.storage.obstore_store import ObstoreStore
from sync_service.clients.storage.s3 import S3Store
from sync_service.errors import ConfigError
from sync_service.models.config import SyncConfig
from sync_service.utils.redaction import Redactor

ACCOUNT_KEY = "c2VjcmV0LWFjY291bnQta2V5LXZhbHVlLTEyMzQ1Njc4OTA="
BARE = ACCOUNT_KEY.rstrip("=")  # a key pasted without its name
SAS = "sv=2024-11-04&ss=b&srt=co&sp=rl&se=2027-01-01T00:00:00Z&sig=aBcD%2FeFgH%3D"


def config(**env: str) -> SyncConfig:
    return SyncConfig.from_env(env, env_file=None)


@pytest.mark.parametrize(("url", "store", "bucket", "prefix"), [
    ("s3://my.dotted.bucket/some/prefix", "s3", "my.dotted.bucket", "some/prefix/"),
    ("gs://gbucket", "gcs", "gbucket", ""),
    ("gs://gbucket/", "gcs", "gbucket", ""),
    ("az://container/deep/er/", "azure", "container", "deep/er/"),
    ("AZ://container/x", "azure", "container", "x/"),
])
def test_source_url_names_store_bucket_and_prefix(url: str, store: str, bucket: str, prefix: str) -> None:
    parsed = config(SOURCE_URL=url, CUSTOMER_S3_BUCKET="ignored", CUSTOMER_S3_PREFIX="ignored/")
    assert (parsed.source_store, parsed.customer_s3_bucket, parsed.customer_s3_prefix) == (store, bucket, prefix)


def test_without_source_url_customer_s3_still_works() -> None:
    parsed = config(CUSTOMER_S3_BUCKET="b", CUSTOMER_S3_PREFIX="p")
    assert (parsed.source_store, parsed.customer_s3_bucket, parsed.customer_s3_prefix) == ("s3", "b", "p/")


@pytest.mark.parametrize("url", ["http://bucket/x", "gs://", "bucket/prefix", "az://c/p?sig=x",
                                 "s3://user:hunter2secret@bucket/p"])
def test_a_bad_source_url_is_a_config_error_naming_it(url: str) -> None:
    with pytest.raises(ConfigError, match="SOURCE_URL") as caught:
        config(SOURCE_URL=url)
    assert "hunter2secret" not in str(caught.value)


def test_a_bad_source_url_exits_2_with_one_line(tmp_path: object) -> None:
    result = subprocess.run([sys.executable, "-m", "sync_service.main", "initial-sync"], cwd=str(tmp_path),
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "SOURCE_URL": "ftp://x/y"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "SOURCE_URL" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_factory_builds_each_store_without_network() -> None:
    assert isinstance(open_store(config(SOURCE_URL="s3://b/p", CUSTOMER_S3_ENDPOINT="http://127.0.0.1:9")),
                      S3Store)
    gcs = open_store(config(SOURCE_URL="gs://g/p", STORAGE_EMULATOR_HOST="127.0.0.1:9"))
    assert isinstance(gcs, ObstoreStore) and gcs.key_of("a") == "p/a" and gcs.path_of("p/a") == "a"
    azure = open_store(config(SOURCE_URL="az://c", AZURE_STORAGE_CONNECTION_STRING="UseDevelopmentStorage=true"))
    assert isinstance(azure, ObstoreStore) and azure.bucket == "c"


def test_azure_credentials_from_each_usual_variable() -> None:
    dev = azure_settings(config(AZURE_STORAGE_CONNECTION_STRING="UseDevelopmentStorage=true"))
    assert dev["account_name"] == "devstoreaccount1" and dev["account_key"] == AZURITE_KEY
    with_sas = azure_settings(config(AZURE_STORAGE_CONNECTION_STRING=(
        f"BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature={SAS}")))
    assert with_sas == {"endpoint": "https://acct.blob.core.windows.net", "sas_key": SAS}
    keyed = azure_settings(config(AZURE_STORAGE_ACCOUNT="acct", AZURE_STORAGE_KEY=ACCOUNT_KEY))
    assert keyed == {"account_name": "acct", "account_key": ACCOUNT_KEY}
    assert azure_settings(config(AZURE_STORAGE_ACCOUNT="acct", AZURE_STORAGE_SAS_TOKEN="?" + SAS))["sas_key"] == SAS
    with pytest.raises(ConfigError, match="AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT"):
        azure_settings(config(SOURCE_URL="az://c"))
    with pytest.raises(ConfigError, match="Name=value") as caught:
        azure_settings(config(AZURE_STORAGE_CONNECTION_STRING=f"AccountName=a;{BARE}"))
    assert BARE not in str(caught.value)


def test_cloud_secrets_never_show() -> None:
    parsed = config(SOURCE_URL="az://c", AZURE_STORAGE_CONNECTION_STRING=(
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net"),
        AZURE_STORAGE_SAS_TOKEN=SAS)
    shown = str(parsed.masked())
    assert ACCOUNT_KEY not in shown and "aBcD" not in shown
    redact = Redactor(parsed.secrets())
    assert ACCOUNT_KEY not in redact(f"failed with key {ACCOUNT_KEY}")  # the bare key, anywhere
    # Whether configured or not: connection strings, SAS signatures and private keys.
    anonymous = Redactor()
    assert anonymous(f"AccountKey={ACCOUNT_KEY};") == "AccountKey=***;"
    assert "aBcD" not in anonymous(f"GET https://acct.blob.core.windows.net/c/k?{SAS} failed")
    pem = '{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADAN\\n-----END PRIVATE KEY-----\\n"}'
    assert "MIIEvQIBADAN" not in anonymous(pem)
