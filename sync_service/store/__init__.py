"""The service's state: one ``Database`` (connections, transactions, migrations) over SQLite
(``sqlite_backend``, the embedded default) or PostgreSQL (``postgres_backend``), and a small
store per noun over it. Every SQL statement of the service lives in this package.

* ``RecordStore``: the file records (what the bucket holds, as learnt) and the dirty marks;
* ``OperationStore``: the outbox of planned operations, and the baseline (what the file manager
  is known to hold), which advances only when an operation succeeded;
* ``EventStore``: applied event ids, S3 sequencers, dead letters, source positions;
* ``RunStore``: runs with their reports, and small settings.

Over the stores: ``DatabaseManager``, the facade the stages above use; ``Heartbeat``, which
renews the leases of a process's claims; ``CSVProcessor``, the state as CSV files (exports,
the touched records of a cycle, an imported state).
"""
