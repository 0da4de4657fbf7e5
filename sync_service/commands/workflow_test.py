"""``test``: the end-to-end workflow as a checklist, one PASS or FAIL per step.

Checks the database, the bucket and the API, runs an incremental sync, exports the state CSV,
and validates that the file manager holds what the bucket holds. Any failure makes the exit
code 1 and names the step. With no bucket configured it runs against embedded servers (moto's
S3 and the mock API, as ``make demo`` does). Their launchers live in ``devtools/`` of a source
checkout, outside the shipped package, and need the development requirements: they are imported
only here, so an installed service (the image, a wheel) runs the checklist against configured
servers and, asked for embedded ones, exits 2 saying what to set instead.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from sync_service.commands import EXIT_FAILED, EXIT_OK
from sync_service.errors import ConfigError, SyncError
from sync_service.models.config import SyncConfig
from sync_service.runs.sync_service import SyncService
from sync_service.utils.paths import unsyncable

Step = Callable[[], str]


class Checklist:
    """Runs steps in order; after a failure, the steps that depend on it are skipped."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def step(self, name: str, check: Step, *, needs_ok: bool = False) -> bool:
        """Run one step and print its line."""
        if needs_ok and self.failed:
            print(f"[SKIP] {name}: an earlier step failed", flush=True)
            return False
        try:
            detail = check()
        except (SyncError, OSError, ValueError) as exc:  # urllib's errors are OSErrors
            print(f"[FAIL] {name}: {exc}", flush=True)
            self.failed.append(name)
            return False
        print(f"[PASS] {name}: {detail}", flush=True)
        return True


def run_checks(service: SyncService) -> int:
    """The workflow against the configured services."""
    config = service.config
    checks = Checklist()
    print(f"bucket {config.customer_s3_bucket!r} at {config.customer_s3_endpoint or 'AWS'}, "
          f"file manager {config.api_base_url}, database {config.database_shown}")
    checks.step("database", lambda: f"{service.db.get_record_count()} records, "
                f"{service.db.check() * 1000:.1f} ms")
    checks.step(service.config.source_store, lambda: f"bucket answers in {service.s3.check() * 1000:.1f} ms")
    checks.step("api", lambda: f"/health answers in {service.api.health() * 1000:.1f} ms")

    def incremental() -> str:
        report = service.incremental_sync()
        if report.failed:
            raise ValueError(f"{report.failed} operations failed, first: {report.failures[0].error}")
        return (f"{report.events_applied} events, {report.succeeded} operations, "
                f"{report.duration_s}s ({report.run_id})")

    checks.step("incremental sync", incremental, needs_ok=True)

    def export() -> str:
        path = service.csv.export(service.db.iter_records(), name="state_test")
        rows = sum(1 for _ in service.csv.iter_records(path))
        if rows != service.db.get_record_count():
            raise ValueError(f"{path} has {rows} rows, the database {service.db.get_record_count()}")
        return f"{rows} rows in {path}"

    checks.step("csv export", export, needs_ok=True)
    checks.step("file manager matches bucket", lambda: validate(service), needs_ok=True)
    print("workflow " + ("passed" if not checks.failed else f"FAILED at: {', '.join(checks.failed)}"))
    return EXIT_OK if not checks.failed else EXIT_FAILED


def validate(service: SyncService) -> str:
    """Compare the bucket, the records and the file manager's listing (``GET /files``)."""
    # One GET: the standard library's urllib, not a client library the image would carry for it.
    request = urllib.request.Request(f"{service.config.api_base_url}/files", headers=service.api.headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            listing = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return "skipped: this file manager has no GET /files listing to compare with"
        raise
    held = {f["path"]: f for f in listing}
    in_bucket = {s.path: s.size for page in service.s3.iter_pages() for s in page
                 if unsyncable(s.key, s.path, s.size) is None}
    problems = [f"missing {p!r}" for p in in_bucket if p not in held]
    problems += [f"extra {p!r}" for p in held if p not in in_bucket]
    problems += [f"size of {p!r}" for p, size in in_bucket.items() if p in held and held[p]["size"] != size]
    for record in service.db.iter_records():
        if not record.permissions:
            continue  # not known yet: its delivery failed, and status says so
        wanted = json.loads(record.permissions)
        if record.path in held and held[record.path]["permissions"] != wanted:
            problems.append(f"permissions of {record.path!r}")
    if problems:
        raise ValueError(f"{len(problems)} differences, e.g. {', '.join(problems[:5])}")
    return f"{len(in_bucket)} files, sizes and permissions equal"


def run_embedded() -> int:
    """The workflow against moto's S3 and the mock API on free ports, seeded with test-data/."""
    try:
        import moto.server  # noqa: F401  - a development requirement: checked before anything starts

        from devtools import local_servers as local  # a source checkout's launchers, not shipped
    except ImportError as exc:  # the image ships the service and requirements.txt only
        missing = (exc.name or "moto").split(".")[0]
        raise ConfigError(f"CUSTOMER_S3_BUCKET is not set, and the embedded test servers need a source "
                          f"checkout with the development requirements ({missing} is not installed): "
                          "set CUSTOMER_S3_* and MOCK_API_URL, or run it from the repository after "
                          "pip install -r requirements-dev.txt") from exc
    workdir = Path(tempfile.mkdtemp(prefix="s3-sync-test-"))
    s3 = api = None
    try:
        print("no CUSTOMER_S3_BUCKET configured: running against embedded S3 and mock API servers")
        s3 = local.MotoS3().start()
        api = local.MockApiProcess(workdir / "file-manager").start()
        from sync_service.clients.s3_manager import make_client

        client = make_client(endpoint_url=s3.endpoint, access_key=local.ACCESS_KEY,
                             secret_key=local.SECRET_KEY)
        permissions = json.loads((local.REPO_ROOT / "scripts" / "test-data-permissions.json").read_text())
        local.seed_folder(client, "customer-bucket", local.REPO_ROOT / "test-data", permissions)
        config = SyncConfig.from_env({
            "CUSTOMER_S3_ENDPOINT": s3.endpoint, "CUSTOMER_S3_ACCESS_KEY": local.ACCESS_KEY,
            "CUSTOMER_S3_SECRET_KEY": local.SECRET_KEY, "CUSTOMER_S3_BUCKET": "customer-bucket",
            "MOCK_API_URL": api.url, "DATA_DIR": str(workdir / "data")}, env_file=None)
        service = SyncService(config, interactive=False)
        report = service.initial_sync()
        print(f"[PASS] initial sync: {report.succeeded} files delivered ({report.run_id})")
        client.put_object(Bucket="customer-bucket", Key="workflow/probe.txt", Body=b"probe")
        service.event_source().publish(json.dumps({"type": "create", "path": "workflow/probe.txt"}))
        service.event_source().publish(json.dumps(
            {"type": "change_permission", "path": "README.txt", "permissions": {"read": ["workflow"]}}))
        return run_checks(service)
    finally:
        if api is not None:
            api.stop()
        if s3 is not None:
            s3.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def run(config: SyncConfig, args: argparse.Namespace) -> int:
    """Run the workflow; 1 when any step fails."""
    if not config.customer_s3_bucket:
        return run_embedded()
    return run_checks(SyncService(config, interactive=False))
