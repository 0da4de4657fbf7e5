"""The S3 side of the storage interface: the existing clients, unchanged, behind it.

``S3Manager`` (botocore: listing, HEAD) and its ``S3DataPath`` (aiohttp + SigV4: HEAD, GET,
check) already hold one location and one region for both paths; this only adds the way in
to the data path that the interface names.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from sync_service.clients.s3_manager import S3Manager
from sync_service.clients.storage.base import ObjectSession
from sync_service.models.config import SyncConfig


class S3Store(S3Manager):
    """An S3 (or S3-compatible) bucket as an ``ObjectStore``."""

    @classmethod
    def from_config(cls, config: SyncConfig, *, pool_size: int | None = None) -> S3Store:
        """The store of ``CUSTOMER_S3_*`` / ``SOURCE_URL=s3://…``."""
        manager = S3Manager.from_config(config, pool_size=pool_size)
        return cls(manager.client, manager.bucket, manager.prefix, data=manager.data)

    def connect(self) -> AbstractAsyncContextManager[ObjectSession]:
        """A data-path session (aiohttp, SigV4) for the current event loop."""
        return self.data.connect()
