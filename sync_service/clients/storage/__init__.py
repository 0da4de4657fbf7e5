"""The storage interface and its stores: S3 (botocore + aiohttp), Google Cloud Storage and
Azure Blob Storage (obstore), chosen by ``SOURCE_URL`` (SPEC §10)."""

from __future__ import annotations

from sync_service.clients.storage.base import ObjectSession, ObjectStore, OpenObject
from sync_service.models.config import SyncConfig


def open_store(config: SyncConfig, *, pool_size: int | None = None) -> ObjectStore:
    """The configured source: ``SOURCE_URL``'s store, else the ``CUSTOMER_S3_*`` bucket."""
    if config.source_store == "gcs":
        from sync_service.clients.storage.gcs import gcs_store
        return gcs_store(config)
    if config.source_store == "azure":
        from sync_service.clients.storage.azure import azure_store
        return azure_store(config)
    from sync_service.clients.storage.s3 import S3Store
    return S3Store.from_config(config, pool_size=pool_size)


__all__ = ["ObjectSession", "ObjectStore", "OpenObject", "open_store"]
