"""Google Cloud Storage as a source (``SOURCE_URL=gs://bucket/prefix``): GETs and HEADs through
obstore, listings through the XML API with google-auth's credentials (``listing.py``).

Credentials as Google's own tools find them: ``GOOGLE_APPLICATION_CREDENTIALS`` (a service
account's JSON key file, or a user's), else the metadata server of the machine it runs on
(GCE, GKE workload identity). ``STORAGE_EMULATOR_HOST`` (fake-gcs-server) sends every request
there, unsigned, as the Google client libraries do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from obstore.store import GCSStore

from sync_service.clients.storage.listing import GCS_ENDPOINT, GcsXmlListing, gcs_session
from sync_service.clients.storage.obstore_store import ObstoreStore
from sync_service.errors import ConfigError
from sync_service.models.config import SyncConfig

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig


def client_options(config: SyncConfig, *, allow_http: bool = False) -> ClientConfig:
    """obstore's HTTP settings from the configuration (shared by the GCS and Azure stores)."""
    options: ClientConfig = {"connect_timeout": "10s", "timeout": f"{max(config.s3_read_timeout, 1):.0f}s",
                               "pool_max_idle_per_host": str(max(32, 2 * config.sync_workers))}
    if allow_http:
        options["allow_http"] = True
    return options


def retry_config(config: SyncConfig) -> RetryConfig:
    """obstore's retries: ``MAX_RETRIES`` of them, its own backoff."""
    return {"max_retries": config.max_retries}


def gcs_store(config: SyncConfig) -> ObstoreStore:
    """The bucket of ``SOURCE_URL=gs://…`` with Google's usual credentials or the emulator."""
    config.require_bucket()
    settings: dict[str, Any] = {}
    emulator = config.storage_emulator_host
    if emulator:
        settings = {"base_url": emulator if "://" in emulator else f"http://{emulator}",
                    "skip_signature": True}
    elif config.google_application_credentials:
        settings = {"application_credentials": config.google_application_credentials}
    allow_http = bool(emulator) and not emulator.startswith("https://")
    try:
        client = GCSStore(config.customer_s3_bucket, client_options=client_options(config, allow_http=allow_http),
                          retry_config=retry_config(config), **settings)
        session = gcs_session(credentials_file="" if emulator else config.google_application_credentials,
                              emulator=bool(emulator), max_retries=config.max_retries)
    except Exception as exc:  # obstore's or google-auth's; the text may quote a setting, so only its kind
        raise ConfigError(f"SOURCE_URL=gs://{config.customer_s3_bucket}: the Google Cloud settings are "
                          f"unusable ({type(exc).__name__})") from exc
    listing = GcsXmlListing(config.customer_s3_bucket, session,
                            endpoint=settings.get("base_url", GCS_ENDPOINT),
                            timeout=max(config.s3_read_timeout, 1))
    return ObstoreStore(client, config.customer_s3_bucket, config.customer_s3_prefix, scheme="gs",
                        listing=listing)
