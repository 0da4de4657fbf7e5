"""What test modules share: the fixtures' types (``harness``), waiting with a deadline
(``waiting``), sync assertions and event spools (``sync``), and the fault proxies and
PostgreSQL servers of the tests. Test modules import from here, never from each other; the
server launchers are ``devtools.local_servers``, shared with the demo and the benchmarks."""
