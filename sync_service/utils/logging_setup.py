"""Logging to the console and ``LOG_DIR/sync.log`` (rotated), as text or JSON, secrets redacted."""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

REDACTED = "****"
_current_run_id: str | None = None


def set_run_id(run_id: str | None) -> None:
    """Tag every log line from now on (from any thread) with ``run_id``; None stops it.

    One process runs one sync at a time, so a module-level value suits worker threads, which
    do not inherit context variables.
    """
    global _current_run_id
    _current_run_id = run_id


class RunIdFilter(logging.Filter):
    """Adds the current run id to each record as ``run_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = _current_run_id
        return True
LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5


class RedactingFilter(logging.Filter):
    """Replaces every known secret value in a record's final message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, REDACTED)
            record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        run_id = getattr(record, "run_id", None)
        if run_id:
            entry["run_id"] = run_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(*, level: str = "INFO", fmt: str = "text", log_dir: Path | None = None,
                  secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once for a command."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    formatter: logging.Formatter = (
        JsonFormatter() if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    redactor = RedactingFilter(secrets)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    problem = None
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.handlers.RotatingFileHandler(
                log_dir / "sync.log", maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS,
                encoding="utf-8"))
        except OSError as exc:
            problem = f"cannot write logs to {log_dir}: {exc}; logging to the console only"
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RunIdFilter())
        handler.addFilter(redactor)
        root.addHandler(handler)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    if problem:
        logging.getLogger(__name__).warning(problem)
