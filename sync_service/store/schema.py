"""The schema, as the migrations that build it: ``MIGRATIONS`` for SQLite (tracked by
``PRAGMA user_version``) and ``POSTGRES_MIGRATIONS`` for PostgreSQL (tracked in the
``schema_version`` table), one script per version, version *n* of one equal to version *n* of
the other.

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
    # 4: claims of workers (who holds a pending operation, until when: epoch seconds)
    """
    ALTER TABLE operations ADD COLUMN claimed_by TEXT;
    ALTER TABLE operations ADD COLUMN lease_until REAL
    """,
    # 5: the initial listing in key ranges that workers list (PostgreSQL; see listing_ranges)
    """
    CREATE TABLE listing_ranges (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        listing TEXT NOT NULL,
        run_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        folders TEXT,
        depth INTEGER NOT NULL,
        after TEXT NOT NULL DEFAULT '',
        until TEXT,
        done INTEGER NOT NULL DEFAULT 0,
        claimed_by TEXT,
        lease_until REAL
    );
    CREATE INDEX listing_ranges_done ON listing_ranges (done, id)
    """,
    # 6: what the listers of a range left alone, by reason (JSON), for the initial sync's report
    """
    ALTER TABLE listing_ranges ADD COLUMN skipped TEXT
    """,
    # 7: what an outcome counts as in a report and the bytes it sent, whoever applied it
    """
    ALTER TABLE operations ADD COLUMN counted_as TEXT;
    ALTER TABLE operations ADD COLUMN bytes_sent BIGINT NOT NULL DEFAULT 0
    """,
)

# PostgreSQL: the same tables, versions and columns (in the same order), in its dialect. Text is
# compared byte by byte (COLLATE "C"), as SQLite does: paths are ordered as S3 lists keys.
# ``runs.rowid`` makes SQLite's implicit insertion order explicit.
POSTGRES_MIGRATIONS: tuple[str, ...] = (
    # 1: file records, runs, operations, settings
    """
    CREATE TABLE files (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        path TEXT COLLATE "C" NOT NULL UNIQUE,
        size BIGINT NOT NULL,
        etag TEXT COLLATE "C" NOT NULL,
        last_modified TEXT COLLATE "C" NOT NULL,
        permissions TEXT COLLATE "C" NOT NULL,
        content_version INTEGER NOT NULL DEFAULT 1,
        synced_at TEXT COLLATE "C" NOT NULL
            DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    );
    CREATE TABLE runs (
        run_id TEXT COLLATE "C" PRIMARY KEY,
        mode TEXT COLLATE "C" NOT NULL,
        started_at TEXT COLLATE "C" NOT NULL,
        finished_at TEXT COLLATE "C",
        status TEXT COLLATE "C" NOT NULL,
        report TEXT,
        rowid BIGINT GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX runs_mode_started ON runs (mode, started_at);
    CREATE TABLE operations (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        run_id TEXT COLLATE "C" NOT NULL,
        op TEXT COLLATE "C" NOT NULL,
        path TEXT COLLATE "C" NOT NULL,
        new_path TEXT COLLATE "C",
        status TEXT COLLATE "C" NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        created_at TEXT COLLATE "C" NOT NULL
            DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        updated_at TEXT COLLATE "C" NOT NULL
            DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    );
    CREATE INDEX operations_status ON operations (status);
    CREATE TABLE settings (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: what the file manager is known to hold, events, dead letters, planned operations
    """
    CREATE TABLE baseline (
        id BIGINT PRIMARY KEY,
        path TEXT COLLATE "C" NOT NULL,
        size BIGINT NOT NULL,
        etag TEXT COLLATE "C" NOT NULL,
        last_modified TEXT COLLATE "C" NOT NULL,
        permissions TEXT COLLATE "C" NOT NULL,
        content_version INTEGER NOT NULL
    );
    CREATE INDEX baseline_path ON baseline (path);
    INSERT INTO baseline SELECT id, path, size, etag, last_modified, permissions, content_version
        FROM files;
    CREATE TABLE applied_events (event_id TEXT COLLATE "C" PRIMARY KEY,
                                 applied_at TEXT COLLATE "C" NOT NULL);
    CREATE TABLE key_sequencers (path TEXT COLLATE "C" PRIMARY KEY,
                                 sequencer TEXT COLLATE "C" NOT NULL);
    CREATE TABLE dead_letters (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        source TEXT COLLATE "C" NOT NULL,
        position TEXT COLLATE "C",
        reason TEXT NOT NULL,
        raw TEXT NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL
            DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    );
    ALTER TABLE operations ADD COLUMN seq INTEGER;
    ALTER TABLE operations ADD COLUMN record_id BIGINT;
    ALTER TABLE operations ADD COLUMN payload TEXT;
    CREATE INDEX operations_run ON operations (run_id, seq)
    """,
    # 3: dirty marks (records whose baseline may differ), initial-sync completion
    """
    CREATE TABLE dirty (id BIGINT PRIMARY KEY);
    INSERT INTO dirty SELECT f.id FROM files f LEFT JOIN baseline b ON b.id = f.id
        WHERE b.id IS NULL OR b.path != f.path OR b.content_version != f.content_version
           OR b.permissions != f.permissions
        ON CONFLICT DO NOTHING;
    INSERT INTO dirty SELECT b.id FROM baseline b LEFT JOIN files f ON f.id = b.id
        WHERE f.id IS NULL
        ON CONFLICT DO NOTHING;
    CREATE INDEX operations_record ON operations (record_id, status);
    UPDATE operations SET status = 'abandoned' WHERE status = 'pending';
    INSERT INTO settings (key, value)
        SELECT 'initial_sync_completed', max(run_id) FROM runs
        WHERE mode = 'initial-sync' AND status IN ('ok', 'failed')
        HAVING count(*) > 0 AND NOT EXISTS (
            SELECT 1 FROM operations WHERE status = 'failed' AND record_id IS NULL)
        ON CONFLICT DO NOTHING;
    UPDATE operations SET status = 'superseded' WHERE status = 'failed' AND record_id IS NULL
    """,
    # 4: claims of workers (who holds a pending operation, until when: epoch seconds)
    """
    ALTER TABLE operations ADD COLUMN claimed_by TEXT COLLATE "C";
    ALTER TABLE operations ADD COLUMN lease_until DOUBLE PRECISION
    """,
    # 5: the initial listing in key ranges that workers list (see listing_ranges)
    """
    CREATE TABLE listing_ranges (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        listing TEXT COLLATE "C" NOT NULL,
        run_id TEXT COLLATE "C" NOT NULL,
        scope TEXT COLLATE "C" NOT NULL,
        folders TEXT COLLATE "C",
        depth INTEGER NOT NULL,
        after TEXT COLLATE "C" NOT NULL DEFAULT '',
        until TEXT COLLATE "C",
        done INTEGER NOT NULL DEFAULT 0,
        claimed_by TEXT COLLATE "C",
        lease_until DOUBLE PRECISION
    );
    CREATE INDEX listing_ranges_done ON listing_ranges (done, id)
    """,
    # 6: what the listers of a range left alone, by reason (JSON), for the initial sync's report
    """
    ALTER TABLE listing_ranges ADD COLUMN skipped TEXT
    """,
    # 7: what an outcome counts as in a report and the bytes it sent, whoever applied it
    """
    ALTER TABLE operations ADD COLUMN counted_as TEXT;
    ALTER TABLE operations ADD COLUMN bytes_sent BIGINT NOT NULL DEFAULT 0
    """,
)

assert len(POSTGRES_MIGRATIONS) == len(MIGRATIONS), "each schema version exists for both engines"
