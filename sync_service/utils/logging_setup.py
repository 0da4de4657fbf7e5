"""Logging to the console and ``LOG_DIR/sync.log`` (rotated), as text or JSON, secrets redacted.

Redaction happens in the formatters, on the finished line: the message, its arguments and any
traceback (``exc_info``, ``stack_info``) all pass through ``redact`` (SPEC §6).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from sync_service.utils.redaction import install, redact

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


class RedactingFormatter(logging.Formatter):
    """A text formatter whose finished line (traceback included) is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; each field is redacted before it is encoded."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        run_id = getattr(record, "run_id", None)
        if run_id:
            entry["run_id"] = run_id
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False)


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """An exception nobody caught goes through the (redacting) log, not raw to stderr."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    logging.getLogger("sync_service").critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)


def setup_logging(*, level: str = "INFO", fmt: str = "text", log_dir: Path | None = None,
                  secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once for a command."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    install(secrets)
    formatter: logging.Formatter = (
        JsonFormatter() if fmt == "json"
        else RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
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
        root.addHandler(handler)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # The pool warns at every failed connection attempt; the outage watch says it once.
    logging.getLogger("psycopg.pool").setLevel(max(logging.ERROR, root.level))
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    if problem:
        logging.getLogger(__name__).warning(problem)
