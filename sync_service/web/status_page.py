"""The status page: the daemon's state, charts of the recent runs, and tables of the last runs,
failed operations and dead letters, as one HTML document rendered on the server.

Every value shown is escaped here (``html.escape``); the status and the health verdict arrive
already redacted (``sync_service.utils.redaction``), and the server passes the page through
``redact`` once more on its way out. The page refreshes itself with a ``<meta>`` tag, so it needs no script.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from string import Template
from typing import Any

from sync_service.runs.health import DEGRADED, FAILING, OK, RAN_ITS_PLAN
from sync_service.runs.status import initial_sync_summary, lag_summary
from sync_service.web.charts import Bar, bar_chart, format_value

TEMPLATE = Path(__file__).resolve().parent / "templates" / "status.html"
REFRESH_S = 5
CHART_RUNS = 20


def text(value: Any) -> str:
    """A value as escaped HTML text ('-' for nothing)."""
    return "-" if value is None or value == "" else escape(str(value))


#: How the page names and colours each verdict of ``sync_service.runs.health``.
VERDICTS = {OK: ("OK", "healthy"), DEGRADED: ("Degraded", "degraded"), FAILING: ("Failing", "unhealthy")}


def render_status_page(status: dict[str, Any], *, next_cycle_at: float | None = None,
                       live_age_s: float | None = None, now: float | None = None) -> str:
    """The whole page for ``status`` (``get_sync_status`` with its ``health`` verdict)."""
    now = now if now is not None else datetime.now(UTC).timestamp()
    health = status["health"]
    title, tone = VERDICTS[health["status"]]
    runs = status.get("recent_runs", [])
    template = Template(TEMPLATE.read_text(encoding="utf-8"))
    return template.substitute(
        refresh=REFRESH_S,
        verdict_class=tone,
        verdict=text(title),
        reason=text(health["reason"]),
        facts=_facts(status, runs, next_cycle_at, now),
        held=_held(status),
        checks=_checks(status, live_age_s),
        charts=_charts(runs),
        runs=_runs_table(runs),
        failures=_failures_table(status.get("recent_failures", []), status["operations"]["failed"]),
        dead_letters=_dead_letters_table(status.get("recent_dead_letters", []), status["dead_letters"]),
        generated=text(_iso(now)),
    )


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: float) -> str:
    """``5 s``, ``3 min 20 s``, ``2 h 5 min``."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def _fact(name: str, value: str, fact_id: str, *, bad: bool = False) -> str:
    tone = ' class="bad"' if bad else ""
    return f'<div{tone}><dt>{escape(name)}</dt><dd id="{fact_id}">{value}</dd></div>'


def _facts(status: dict[str, Any], runs: list[dict[str, Any]], next_cycle_at: float | None,
           now: float) -> str:
    last_ok = next((run for run in runs if run["status"] in RAN_ITS_PLAN), None)
    if next_cycle_at is None:
        next_cycle = "-"
    elif status.get("sync_running"):
        next_cycle = "running now"
    else:
        next_cycle = f"in {_duration(next_cycle_at - now)} ({text(_iso(next_cycle_at))})"
    operations = status["operations"]
    initial = status["initial_sync"]
    return "".join((
        _fact("records", text(status["records"]), "records"),
        _fact("last success", text(last_ok["finished_at"]) + f" ({text(last_ok['mode'])})"
              if last_ok else "none yet", "last-success"),
        _fact("next cycle", next_cycle, "next-cycle"),
        _fact("event source", _source(status.get("event_source") or {}), "event-source",
              bad="error" in (status.get("event_source") or {})),
        _fact("event lag", text(lag_summary(status.get("event_lag_s"))) + " (last report window)",
              "event-lag"),
        _fact("pending operations", text(operations["pending"]), "pending"),
        _fact("failed operations", text(operations["failed"]), "failed", bad=operations["failed"] > 0),
        _fact("dead letters", text(status["dead_letters"]), "dead-letters", bad=status["dead_letters"] > 0),
        _fact("initial sync", text(initial_sync_summary(initial)), "initial-sync"),
        _fact("bucket", text(status["bucket"]) + (f" / {text(status['prefix'])}" if status["prefix"] else ""),
              "bucket"),
        _fact("file manager", text(status["api"]), "api"),
    ))


def _source(source: dict[str, Any]) -> str:
    name = text(source.get("source"))
    if "error" in source:
        return f"{name}: {text(source['error'])}"
    if source.get("source") == "nats":
        return (f"{name} stream {text(source.get('stream'))}: <b id=\"source-pending\">"
                f"{text(source.get('pending'))}</b> pending, {text(source.get('ack_pending'))} awaiting ack")
    if source.get("source") == "file":
        return f"{name} spool: <b id=\"source-pending\">{text(source.get('pending_files'))}</b> files waiting"
    return name


def _held(status: dict[str, Any]) -> str:
    held = (status.get("reconcile") or {}).get("held_deletes")
    if not held:
        return ""
    paths = "".join(f"<li>{text(path)}</li>" for path in held.get("paths", []))
    return (f'<section class="held" id="held-deletes"><h2>Held deletes: {text(held.get("count"))}</h2>'
            f"<p>The reconcile run {text(held.get('run_id'))} would delete {text(held.get('count'))} "
            f"files, more than the limit of {text(held.get('limit'))}; nothing was deleted. Check the "
            f"bucket and prefix, then run <code>reconcile --max-delete {text(held.get('count'))}</code>."
            f"</p><ul>{paths}</ul></section>")


def _checks(status: dict[str, Any], live_age_s: float | None) -> str:
    checks = status.get("checks") or {}
    items = []
    for name, check in checks.items():
        if check.get("ok"):
            items.append(f'<li class="ok">{text(name)} ok, {text(check.get("latency_ms"))} ms</li>')
        else:
            items.append(f'<li class="bad">{text(name)} FAILED: {text(check.get("error"))}</li>')
    age = "" if live_age_s is None else f" (checked {round(live_age_s)} s ago)"
    return f'<ul class="checks">{"".join(items)}</ul><p class="note">live checks{escape(age)}</p>'


def _charts(runs: list[dict[str, Any]]) -> str:
    finished = [run for run in reversed(runs[:CHART_RUNS]) if run.get("duration_s") is not None]

    def bars(value: Any, *, bad: bool = False) -> list[Bar]:
        return [Bar(f"{run['run_id']} ({run['status']})", float(value(run)), bad and run["status"] != "ok")
                for run in finished]

    return "".join((
        bar_chart("duration", bars(lambda run: run["duration_s"]), unit=" s"),
        bar_chart("operations", bars(lambda run: run["operations"] or 0)),
        bar_chart("objects per second", bars(_rate), unit="/s"),
        bar_chart("failures", bars(lambda run: run["failed"] or 0, bad=True)),
    ))


def _rate(run: dict[str, Any]) -> float:
    duration = run.get("duration_s") or 0
    return round((run.get("succeeded") or 0) / duration, 2) if duration > 0 else 0.0


def _table(table_id: str, headings: Iterable[str], rows: list[str], empty: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    body = "".join(rows) or f'<tr><td colspan="{len(list(headings))}" class="note">{escape(empty)}</td></tr>'
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _runs_table(runs: list[dict[str, Any]]) -> str:
    headings = ("run", "mode", "status", "started", "duration", "operations", "succeeded", "failed",
                "skipped", "events applied / rejected", "objects/s")
    rows = []
    for run in runs:
        tone = "" if run["status"] in ("ok", "running") else ' class="bad"'
        duration = run.get("duration_s")
        rows.append(
            f'<tr{tone} data-run-id="{text(run["run_id"])}"><td>{text(run["run_id"])}</td>'
            f"<td>{text(run['mode'])}</td><td>{text(run['status'])}</td><td>{text(run['started_at'])}</td>"
            f"<td>{text(None if duration is None else format_value(duration) + ' s')}</td>"
            f"<td>{text(run.get('operations'))}</td><td>{text(run.get('succeeded'))}</td>"
            f"<td>{text(run.get('failed'))}</td><td>{text(run.get('skipped'))}</td>"
            f"<td>{text(run.get('events_applied'))} / {text(run.get('events_rejected'))}</td>"
            f"<td>{text(format_value(_rate(run)) if duration else None)}</td></tr>")
    return _table("runs", headings, rows, "no runs yet")


def _failures_table(failures: list[dict[str, Any]], total: int) -> str:
    rows = [f"<tr><td>{text(f['op'])}</td><td class=\"path\">{text(f['path'])}</td>"
            f"<td>{text(f['error'])}</td><td>{text(f['run_id'])}</td><td>{text(f['at'])}</td></tr>"
            for f in failures]
    more = (f'<p class="note">the newest {len(failures)} of {total}</p>' if total > len(failures) else "")
    return _table("failures", ("operation", "path", "error", "run", "at"), rows,
                  "no failed operations") + more


def _dead_letters_table(letters: list[dict[str, Any]], total: int) -> str:
    rows = [f"<tr><td>{text(d['at'])}</td><td>{text(d['source'])}</td><td>{text(d['position'])}</td>"
            f"<td>{text(d['reason'])}</td><td><code>{text(d['raw'])}</code></td></tr>" for d in letters]
    more = (f'<p class="note">the newest {len(letters)} of {total}</p>' if total > len(letters) else "")
    return _table("dead-letters-table", ("at", "source", "position", "reason", "message"), rows,
                  "no dead letters") + more
