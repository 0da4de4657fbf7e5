"""The status page of a real daemon (moto's S3 behind a proxy that denies one object, the mock
API on a port): ``/`` and ``/api/status`` against ``status --json``, read with requests and
rendered by headless Chromium; the page parts (charts, escaping) as pure units."""

from __future__ import annotations

import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import requests

from devtools.local_servers import REPO_ROOT, free_port
from sync_service.web.charts import Bar, bar_chart
from sync_service.web.status_page import render_status_page
from tests.helpers.browser import chromium, png_size
from tests.helpers.fault_proxy import DenyingProxy
from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import metric, spool, stop
from tests.helpers.waiting import wait_for

SCRIPT_KEY = "docs/<script>alert(1)</script>.txt"
SCRIPT_LINE = '{"type": "<script>alert(2)</script>"'  # malformed: no closing brace
SCREENSHOT = REPO_ROOT / "docs" / "status-page.png"
# Fields that differ between two reads by design: latencies, and whether a sync holds the lock.
# The health verdict too: it rests on the live checks, and the daemon judges its own cycles
# where ``status`` reads them from the database.
VOLATILE = ("checks", "sync_running", "health")
VOID = {"meta", "link", "br", "hr", "img", "input", "wbr", "source", "col", "area", "base"}


class PageText(HTMLParser):
    """The text of a page: all of it, by element id, and what is inside script elements."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.by_id: dict[str, str] = {}
        self.scripts: list[str] = []
        self.run_rows: list[str] = []
        self._open: list[tuple[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and found.get("data-run-id"):
            self.run_rows.append(str(found["data-run-id"]))
        if tag == "script":
            self.scripts.append("")
        if tag not in VOID:
            self._open.append((tag, found.get("id")))
            if found.get("id"):
                self.by_id[str(found["id"])] = ""

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for tag, element_id in self._open:
            if element_id:
                self.by_id[element_id] += data
            if tag == "script":
                self.scripts[-1] += data

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def failed_cycles(base: str) -> float:
    try:
        return metric(base, "sync_cycles_total", mode="incremental-sync", result="failed")
    except requests.RequestException:  # not serving yet
        return 0.0


def stable(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k not in VOLATILE}


def assert_page_shows(page: PageText, status: dict[str, Any]) -> None:
    assert page.by_id["records"].strip() == str(status["records"])
    assert page.by_id["pending"].strip() == str(status["operations"]["pending"])
    assert page.by_id["failed"].strip() == str(status["operations"]["failed"])
    assert page.by_id["dead-letters"].strip() == str(status["dead_letters"])
    assert page.by_id["source-pending"].strip() == str(status["event_source"]["pending_files"])
    assert page.run_rows == [run["run_id"] for run in status["recent_runs"]]
    assert SCRIPT_KEY in page.by_id["failures"]  # shown as text, whole
    assert SCRIPT_LINE in page.by_id["dead-letters-table"]
    assert not any("alert" in script for script in page.scripts)
    # one object denied: the cycles ran their plans, so degraded, not failing (SPEC §6)
    assert "Degraded" in page.by_id["verdict"] and "failed operation" in page.by_id["reason"]


def test_the_status_page_shows_what_status_json_says_and_escapes_paths(
        cli: Cli, bucket: Bucket, api: Api, tmp_path: Path) -> None:
    # given: runs with a failure (S3 denies the <script> object) and a malformed spool line
    for key in ("a.txt", "docs/b.txt", SCRIPT_KEY):
        bucket.put(key, key.encode())
    with DenyingProxy(bucket.endpoint, {SCRIPT_KEY}) as proxy:
        via_proxy = {"CUSTOMER_S3_ENDPOINT": proxy.endpoint}
        assert cli.run("initial-sync", **via_proxy).returncode == 1
        for n in range(3):
            for m in range(n + 2):
                bucket.put(f"later/{n}-{m}.txt", b"x" * (m + 1))
            spool(cli, f"00{n}", *({"event_id": f"e{n}-{m}", "type": "create", "path": f"later/{n}-{m}.txt"}
                                   for m in range(n + 2)))
            assert cli.run("incremental-sync", **via_proxy).returncode == 1
        spool(cli, "009", SCRIPT_LINE)
        port = free_port()
        base = f"http://127.0.0.1:{port}"

        # when: the daemon runs one cycle (then waits an hour) and the page is read
        daemon = cli.start("daemon", SYNC_INTERVAL="3600", METRICS_PORT=str(port), **via_proxy)
        try:
            wait_for(lambda: failed_cycles(base) == 1, timeout=60)
            answer = requests.get(f"{base}/api/status", timeout=10)
            from_cli = json.loads(cli.run("status", "--json", **via_proxy).stdout)
            page = requests.get(f"{base}/", timeout=10)
            dom = chromium("--dump-dom", f"{base}/")
            shot = tmp_path / "status-page.png"
            screenshot = chromium(f"--screenshot={shot}", "--window-size=1280,1600", f"{base}/")
        finally:
            code, _ = stop(daemon)
    assert code == 0

    # then: /api/status is status --json, and the page shows its numbers with the path as text
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    from_api = answer.json()
    assert stable(from_api) == stable(from_cli)
    assert set(from_api["checks"]) == {"s3", "api", "database"}
    assert from_cli["dead_letters"] == 1 and from_cli["operations"]["failed"] >= 1
    assert from_cli["health"]["status"] == from_api["health"]["status"] == "degraded"
    assert [f["path"] for f in from_cli["recent_failures"]][:1] == [SCRIPT_KEY]
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "<script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert_page_shows(PageText(page.text), from_cli)

    # and in Chromium, with scripts on: the same numbers, the <script> path as text, no script element
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = PageText(dom.stdout)
    assert_page_shows(rendered, from_cli)
    assert rendered.scripts == []
    assert screenshot.returncode == 0 and png_size(shot) == (1280, 1600), screenshot.stderr[-2000:]
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


def test_a_chart_scales_its_bars_and_escapes_its_labels() -> None:
    # given three runs, the last one failed, one labelled with markup
    bars = [Bar("run-1", 2.0), Bar("<b>run-2</b>", 4.0), Bar("run-3", 1.0, bad=True)]

    # when
    svg = bar_chart("duration", bars, unit=" s")

    # then
    assert svg.count("<rect") == 3 and svg.count('class="bad"') == 1
    assert "&lt;b&gt;run-2&lt;/b&gt;: 4 s" in svg and "<b>" not in svg
    assert 'height="98.0"' in svg and "max 4" in svg


def test_the_page_renders_with_nothing_run_yet() -> None:
    # given a fresh database's status and a daemon that has not finished a cycle
    status = {"records": 0, "operations": {"pending": 0, "failed": 0}, "recent_failures": [],
              "initial_sync": {"completed": False, "key_ranges": {"listed": 0, "left": 0}}, "event_position": None,
              "event_source": {"source": "file", "folder": "/d", "pending_files": 0}, "dead_letters": 0,
              "recent_runs": [], "recent_dead_letters": [], "last_runs": {}, "sync_running": False,
              "database": "/d/sync.db", "bucket": "b", "prefix": "", "api": "http://api"}

    # when
    status["health"] = {"status": "failing", "reason": "no cycle has run its plan yet"}
    html = render_status_page(status, now=0)

    # then
    page = PageText(html)
    assert "Failing" in page.by_id["verdict"] and "no cycle has run its plan yet" in page.by_id["reason"]
    assert "no runs yet" in page.by_id["runs"] and page.by_id["records"] == "0"


def test_held_deletes_and_an_overdue_daemon_show_at_the_top() -> None:
    # given a reconcile that held deletes back, and no cycle finished in time
    status = {"records": 3, "operations": {"pending": 0, "failed": 0}, "recent_failures": [],
              "initial_sync": {"completed": True, "key_ranges": {"listed": 0, "left": 0}}, "event_position": None,
              "event_source": {"source": "file", "folder": "/d", "pending_files": 2}, "dead_letters": 0,
              "recent_runs": [], "recent_dead_letters": [], "last_runs": {}, "sync_running": False,
              "reconcile": {"interval_s": 86400, "last_at": None, "held_deletes": {
                  "run_id": "reconcile-1", "count": 7, "limit": 1, "paths": ["a/<i>b</i>.txt"]}},
              "database": "/d/sync.db", "bucket": "b", "prefix": "", "api": "http://api"}

    # when
    status["health"] = {"status": "failing", "reason": "no cycle has finished in time (2 x SYNC_INTERVAL + 60 s)"}
    html = render_status_page(status, now=0)

    # then
    page = PageText(html)
    assert "no cycle has finished in time" in page.by_id["reason"]
    assert "Held deletes: 7" in page.by_id["held-deletes"] and "a/<i>b</i>.txt" in page.by_id["held-deletes"]
    assert "<i>" not in html and page.by_id["source-pending"] == "2"
