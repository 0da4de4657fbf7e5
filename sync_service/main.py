"""Command-line entry point: ``python -m sync_service.main <command>``.

Parses arguments, loads the configuration, and dispatches to one handler per command; maps
the service's errors onto exit codes (SPEC §6).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from sync_service.commands import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_USAGE,
    initial_sync,
    status,
)
from sync_service.errors import ConfigError, LockHeldError, SyncError
from sync_service.models.config import SyncConfig
from sync_service.utils.logging_setup import setup_logging

logger = logging.getLogger("sync_service")

Handler = Callable[[SyncConfig, argparse.Namespace], int]

EPILOG = """\
exit codes: 0 done; 1 finished with failed operations (or a failed check);
            2 bad usage or configuration; 3 another sync holds the database lock.
Configuration comes from the environment and a .env file in the working folder.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    parser = _Parser(prog="python -m sync_service.main",
                     description="Keep a file manager in step with an S3 bucket.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)
    commands.add_parser("initial-sync", help="deliver every object of the bucket to the "
                        "file manager, record it, export the state CSV")
    status_parser = commands.add_parser("status", help="records, last runs, failures, and a "
                                        "live check of S3, the API and the database")
    status_parser.add_argument("--json", action="store_true", help="print JSON")
    commands.add_parser("help", help="show this help")
    return parser


HANDLERS: dict[str, Handler] = {
    "initial-sync": initial_sync.run,
    "status": status.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in (None, "help"):
        parser.print_help()
        return 0
    try:
        config = SyncConfig.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(level=config.log_level, fmt=config.log_format, log_dir=config.log_dir,
                  secrets=config.secrets())
    try:
        return HANDLERS[args.command](config, args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LockHeldError as exc:
        logger.error("%s", exc)
        return EXIT_LOCKED
    except SyncError as exc:
        logger.error("%s failed: %s", args.command, exc)
        return EXIT_FAILED
    except KeyboardInterrupt:
        logger.warning("%s interrupted; what was delivered is recorded", args.command)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
