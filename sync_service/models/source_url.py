"""``SOURCE_URL``: which store holds the bucket, its name and the prefix below it (SPEC §10)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sync_service.errors import ConfigError
from sync_service.utils.redaction import mask_url

#: The schemes ``SOURCE_URL`` accepts, and the store each names.
SOURCE_SCHEMES = {"s3": "s3", "gs": "gcs", "az": "azure"}


@dataclass(frozen=True)
class SourceUrl:
    """A parsed ``SOURCE_URL``: the store (``s3``, ``gcs``, ``azure``), bucket and prefix."""

    store: str
    bucket: str
    prefix: str


def parse_source_url(raw: str) -> SourceUrl:
    """``s3://bucket/prefix``, ``gs://bucket/prefix`` or ``az://container/prefix``, the prefix
    ending in '/' when there is one; ConfigError naming SOURCE_URL for anything else."""
    value = raw.strip()
    parts = urlsplit(value)
    store = SOURCE_SCHEMES.get(parts.scheme.lower())
    if store is None or not parts.netloc or parts.query or parts.fragment or "@" in parts.netloc:
        raise ConfigError("SOURCE_URL must be s3://bucket/prefix, gs://bucket/prefix or "
                          f"az://container/prefix, got {mask_url(value)!r}")
    prefix = parts.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return SourceUrl(store, parts.netloc, prefix)
