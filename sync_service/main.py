"""Command-line entry point: ``s3-sync <command>`` once installed, ``python -m sync_service.main
<command>`` in a checkout; the same function behind both.

Parses arguments, loads the configuration, and dispatches to one handler per command; maps
the service's errors onto exit codes (SPEC §6).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, cast

from sync_service.commands import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_USAGE
from sync_service.commands.completion import FileArgument, completion_script
from sync_service.errors import ConfigError, CorruptDatabaseError, LockHeldError, SyncError
from sync_service.models.config import SyncConfig
from sync_service.utils.logging_setup import setup_logging
from sync_service.utils.redaction import RedactingStream

logger = logging.getLogger("sync_service")

Handler = Callable[[SyncConfig, argparse.Namespace], int]

EPILOG = """\
exit codes: 0 done; 1 finished with failed operations (or a failed check);
            2 bad usage or configuration; 3 another sync holds the database lock;
            130 interrupted (Ctrl-C): what was delivered before is recorded.
Configuration comes from the environment and a .env file in the working folder
(every variable: docs/configuration.md, .env.example).
"""


MODULE_PROG = "python -m sync_service.main"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _VersionAction(argparse.Action):
    """``--version``: the package metadata is read only when asked for, not on every command."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from sync_service.version import package_version

        print(f"{parser.prog} {package_version()}")
        parser.exit(0)


def program_name(argv0: str | None = None) -> str:
    """How the user called us: ``s3-sync`` (the installed command) or ``python -m sync_service.main``."""
    name = os.path.basename(argv0 if argv0 is not None else sys.argv[0])
    return MODULE_PROG if name in ("", "main.py", "__main__.py", "-c") else name


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command-line grammar."""
    parser = _Parser(prog=prog or program_name(),
                     description="Keep a file manager in step with an S3 bucket.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)
    initial = commands.add_parser("initial-sync", help="deliver every object of the bucket to "
                                  "the file manager, record it, export the state CSV")
    initial.add_argument("--dry-run", action="store_true",
                         help="print what would be delivered; call nothing, change nothing")
    initial.add_argument("--json", action="store_true",
                         help="with --dry-run: the plan as JSON lines, one object per operation or "
                         "skipped object")
    initial.add_argument("--plan-only", action="store_true",
                         help="apply nothing: with PostgreSQL store the listing's first key range "
                         "for worker processes to list and apply; with SQLite list and store the "
                         "operations")
    incremental = commands.add_parser("incremental-sync", help="replay events, diff the old and "
                                      "new state, apply the operations")
    incremental.add_argument("--dry-run", action="store_true",
                             help="print the plan; call nothing, change nothing")
    repair = commands.add_parser("reconcile", help="list the bucket, compare with the records, "
                                 "and repair what changed without an event")
    repair.add_argument("--max-delete", type=int, default=None, metavar="N",
                        help="refuse a repair deleting more than N files (default: 10%% of the records)")
    repair.add_argument("--dry-run", action="store_true", help="print the drift; change nothing")
    publish = commands.add_parser("publish-event", help="publish one event (JSON) to the "
                                  "configured event source")
    publish.add_argument("event", help="the event as JSON")
    export = commands.add_parser("export-csv", help="export the records as a state CSV")
    export.add_argument("--out", default=None, action=FileArgument,
                        help="file to write (default: EXPORT_DIR/state.csv)")
    diff = commands.add_parser("diff", help="print the ordered plan between two state CSVs")
    diff.add_argument("old", action=FileArgument, help="the old state CSV")
    diff.add_argument("new", action=FileArgument, help="the new state CSV")
    commands.add_parser("daemon", help="initial sync if nothing is recorded, then an incremental "
                        "sync every SYNC_INTERVAL seconds; /health and /metrics on METRICS_PORT")
    check = commands.add_parser("check", help="compare the bucket, the records and the file manager; "
                                "print the differences, exit 1 when there are any")
    check.add_argument("--json", action="store_true", help="print JSON")
    status_parser = commands.add_parser("status", help="records, last runs, failures, and a "
                                        "live check of S3, the API and the database")
    status_parser.add_argument("--json", action="store_true", help="print JSON")
    commands.add_parser("test", help="end-to-end check: database, S3, API, an incremental sync, "
                        "CSV export, file manager vs bucket (embedded servers when unconfigured)")
    work = commands.add_parser("worker", help="claim pending operations and key ranges of an initial "
                               "listing from the shared PostgreSQL database (DATABASE_URL), apply "
                               "and list them; run any number of them")
    work.add_argument("--until-idle", action="store_true",
                      help="exit once no operation is pending and no range is left to list "
                      "(default: work until SIGTERM)")
    move = commands.add_parser("import-state", help="copy the SQLite state into the empty "
                               "PostgreSQL database at DATABASE_URL, to move to it without "
                               "delivering every object again")
    move.add_argument("--from", dest="source", default=None, metavar="PATH", action=FileArgument,
                      help="the SQLite file to copy (default: DATABASE_PATH)")
    completion = commands.add_parser("completion", help="print a shell completion script "
                                     "(source <(s3-sync completion bash))")
    completion.add_argument("shell", choices=("bash", "zsh"), help="the shell")
    commands.add_parser("help", help="show this help")
    return parser


#: Each command's handler as ``module:function`` under ``sync_service.commands``, imported only
#: when that command runs: the daemon's web and metrics modules cost a sync a tenth of a second.
HANDLERS: dict[str, str] = {
    "initial-sync": "initial_sync:run",
    "incremental-sync": "incremental_sync:run",
    "reconcile": "reconcile:run",
    "publish-event": "publish_event:run",
    "export-csv": "state_files:export_csv",
    "diff": "state_files:diff",
    "status": "status:run",
    "check": "check:run",
    "daemon": "daemon:run",
    "test": "workflow_test:run",
    "worker": "worker:run",
    "import-state": "import_state:run",
}


#: Commands answered by the parser alone, before (and whatever) the configuration: they must
#: work on a machine where nothing is configured yet.
WITHOUT_CONFIGURATION = frozenset({"help", "completion"})


def handler_of(command: str) -> Handler:
    """The function that runs ``command``."""
    module, function = HANDLERS[command].split(":")
    return cast(Handler, getattr(importlib.import_module(f"sync_service.commands.{module}"), function))


def _imported(command: str) -> Handler:
    """Import the command's handler with the garbage collector off: the imports allocate
    hundreds of thousands of objects that all live as long as the process, and collecting
    while they arrive was a tenth of a short command's CPU (py-spy --native). They are then
    frozen out of the collector's view for good."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return handler_of(command)
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code; whatever it prints is redacted (SPEC §6)."""
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(stdout), RedactingStream(stderr)
    try:
        return _dispatch(argv)
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def _dispatch(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in (None, "help"):
        parser.print_help()
        return 0
    if args.command == "completion":  # needs no configuration: it works before any is written
        print(completion_script(parser, args.shell), end="")
        return 0
    try:
        config = SyncConfig.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(level=config.log_level, fmt=config.log_format, log_dir=config.log_dir,
                  secrets=config.secrets())
    try:
        return _imported(args.command)(config, args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LockHeldError as exc:
        logger.error("%s", exc)
        return EXIT_LOCKED
    except CorruptDatabaseError as exc:
        print(f"database error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SyncError as exc:
        logger.error("%s failed: %s", args.command, exc)
        return EXIT_FAILED
    except KeyboardInterrupt:
        logger.warning("%s interrupted; what was delivered is recorded", args.command)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
