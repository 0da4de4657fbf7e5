"""The schema, as the migrations that build it (applied in order, tracked by ``user_version``).

Operation statuses: ``pending`` (stored, not yet applied), ``done``, ``failed`` (kept; the record
stays dirty, so the next run plans it again), ``skipped`` (the object vanished), ``superseded``
(a later plan took it over), ``abandoned`` (pending in a schema before 3; planned again).
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: file records, runs, operations, settings
    """
    CREATE TABLE files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        etag TEXT NOT NULL,
        last_modified TEXT NOT NULL,
        permissions TEXT NOT NULL,
        content_version INTEGER NOT NULL DEFAULT 1,
        synced_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
    );
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        mode TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        report TEXT
    );
    CREATE INDEX runs_mode_started ON runs (mode, started_at);
    CREATE TABLE operations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        op TEXT NOT NULL,
        path TEXT NOT NULL,
        new_path TEXT,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
    );
    CREATE INDEX operations_status ON operations (status);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: what the file manager is known to hold, events, dead letters, planned operations
    """
    CREATE TABLE baseline (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        etag TEXT NOT NULL,
        last_modified TEXT NOT NULL,
        permissions TEXT NOT NULL,
        content_version INTEGER NOT NULL
    );
    CREATE INDEX baseline_path ON baseline (path);
    INSERT INTO baseline SELECT id, path, size, etag, last_modified, permissions, content_version
        FROM files;
    CREATE TABLE applied_events (event_id TEXT PRIMARY KEY, applied_at TEXT NOT NULL);
    CREATE TABLE key_sequencers (path TEXT PRIMARY KEY, sequencer TEXT NOT NULL);
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL,
        position TEXT,
        reason TEXT NOT NULL,
        raw TEXT NOT NULL,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
    );
    ALTER TABLE operations ADD COLUMN seq INTEGER;
    ALTER TABLE operations ADD COLUMN record_id INTEGER;
    ALTER TABLE operations ADD COLUMN payload TEXT;
    CREATE INDEX operations_run ON operations (run_id, seq)
    """,
    # 3: dirty marks (records whose baseline may differ), initial-sync completion
    """
    CREATE TABLE dirty (id INTEGER PRIMARY KEY);
    INSERT OR IGNORE INTO dirty SELECT f.id FROM files f LEFT JOIN baseline b ON b.id = f.id
        WHERE b.id IS NULL OR b.path != f.path OR b.content_version != f.content_version
           OR b.permissions != f.permissions;
    INSERT OR IGNORE INTO dirty SELECT b.id FROM baseline b LEFT JOIN files f ON f.id = b.id
        WHERE f.id IS NULL;
    CREATE INDEX operations_record ON operations (record_id, status);
    UPDATE operations SET status = 'abandoned' WHERE status = 'pending';
    INSERT OR IGNORE INTO settings (key, value)
        SELECT 'initial_sync_completed', max(run_id) FROM runs
        WHERE mode = 'initial-sync' AND status IN ('ok', 'failed')
        HAVING count(*) > 0 AND NOT EXISTS (
            SELECT 1 FROM operations WHERE status = 'failed' AND record_id IS NULL);
    UPDATE operations SET status = 'superseded' WHERE status = 'failed' AND record_id IS NULL
    """,
)
