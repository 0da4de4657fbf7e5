"""The one redaction function (SPEC §6): secrets never leave the process.

Every edge where text leaves (log handlers, stdout and stderr, the stored, written and posted run
reports, failure rows, dead letters, ``status``, ``/health`` and ``/metrics``) passes it
through ``redact``. Two rules, applied in this order:

* the password part of any URL (``scheme://user:password@host``) becomes ``***``, whether or
  not the URL is one the service was configured with;
* the secret parts of cloud credentials, wherever they appear and whether configured or not:
  an Azure connection string's ``AccountKey=`` and ``SharedAccessSignature=``, a SAS token's
  ``sig=``, and a Google service account's private key (PEM block or JSON ``private_key``);
* every known secret value (``CUSTOMER_S3_SECRET_KEY``, ``API_TOKEN``, ``TARGET_S3_SECRET_KEY``,
  the Azure key, SAS token and connection string, and the passwords of the configured URLs, as
  given, percent-encoded, percent-decoded and JSON-escaped) becomes ``***`` wherever it appears.

Which values are secret is a fact about the whole process, like its logging configuration, so
``install`` sets them once (``main`` does, from ``SyncConfig.secrets``); a ``Redactor`` built
directly serves tests and callers that want their own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, TextIO, TypeVar
from urllib.parse import quote, unquote, urlsplit

MASK = "***"
#: Shorter values would match ordinary text everywhere; URL passwords are masked by position.
MIN_SECRET_LENGTH = 4

# scheme://user:password@ -- the password runs to the '@' that ends the userinfo.
_URL_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@\"'<>]*:)(?P<password>[^\s@/\"'<>]*)(?P<tail>@)")

# AccountKey=...; SharedAccessSignature=...; (connection strings) and sig=... (SAS tokens).
_CLOUD_KEYS = re.compile(r"(?P<head>\b(?:AccountKey|SharedAccessSignature)=)(?P<secret>[^;\s\"']+)"
                         r"|(?P<sighead>[?&]sig=)(?P<sig>[^&\s\"']+)", re.IGNORECASE)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----"
                          r"|(?P<head>\\?\"private_key\\?\"\s*:\s*\\?\")(?P<secret>(?:[^\"\\]|\\.){8,})",
                          re.DOTALL)

T = TypeVar("T")


def _variants(secret: str) -> set[str]:
    """The forms a secret may take in text: as given, URL-encoded or decoded, JSON-escaped."""
    forms = {secret, quote(secret, safe=""), unquote(secret), json.dumps(secret)[1:-1],
             json.dumps(secret, ensure_ascii=False)[1:-1]}
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


class Redactor:
    """Masks URL passwords and known secret values in text and in JSON-like values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        found: set[str] = set()
        for secret in secrets:
            if secret:
                found |= _variants(secret)
        # Longest first, so a secret containing another is masked whole.
        self.secrets: tuple[str, ...] = tuple(sorted(found, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        """``text`` with every URL password and every known secret replaced by ``***``."""
        if not text:
            return text
        masked = mask_url(text) if "://" in text else text
        masked = mask_cloud_keys(masked)
        for secret in self.secrets:
            if secret in masked:
                masked = masked.replace(secret, MASK)
        return masked

    def value(self, value: T) -> T:
        """A copy of a JSON-like value (dicts, lists, strings) with every string redacted."""
        return self._walk(value)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self._walk(k): self._walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._walk(v) for v in value)
        return value


_active = Redactor()


def install(secrets: Iterable[str]) -> Redactor:
    """Make ``secrets`` the values this process masks from now on; returns the redactor."""
    global _active
    _active = Redactor(secrets)
    return _active


def redact(text: str) -> str:
    """The one redaction function: ``text`` with URL passwords and installed secrets masked."""
    return _active(text)


def redact_value(value: T) -> T:
    """``redact`` applied to every string of a JSON-like value (a report, a status)."""
    return _active.value(value)


def mask_url(url: str) -> str:
    """A URL (or a comma-separated list) with its password shown as ``***``:
    ``nats://user:***@host:4222``. Nothing else of it changes."""
    return _URL_USERINFO.sub(lambda m: m["head"] + MASK + m["tail"], url)


def mask_cloud_keys(text: str) -> str:
    """``text`` with Azure account keys, SAS signatures and private keys shown as ``***``."""
    masked = _CLOUD_KEYS.sub(lambda m: (m["head"] or m["sighead"]) + MASK, text) if "=" in text else text
    if "PRIVATE KEY" in masked or "private_key" in masked:
        masked = _PRIVATE_KEY.sub(lambda m: m["head"] + MASK if m["head"] else MASK, masked)
    return masked


def connection_string_secrets(connection_string: str) -> list[str]:
    """The secret values of an Azure connection string (its account key and SAS)."""
    secrets = []
    for part in connection_string.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() in ("accountkey", "sharedaccesssignature") and value:
            secrets.append(value.strip())
    return secrets


def url_passwords(urls: Iterable[str]) -> list[str]:
    """The passwords of ``urls`` (each may be a comma-separated list, as ``NATS_URL`` is)."""
    found = []
    for value in urls:
        for url in value.split(","):
            try:
                password = urlsplit(url.strip()).password
            except ValueError:
                continue
            if password:
                found += [password, unquote(password)]
    return found


class RedactingStream:
    """A text stream (stdout, stderr) that redacts everything written through it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        """Write ``text`` redacted; returns the length of what was asked, as streams do."""
        self.stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each line redacted."""
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, ...
        return getattr(self.stream, name)
