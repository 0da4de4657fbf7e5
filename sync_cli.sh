#!/usr/bin/env bash
# Run a sync_service command: inside the Compose stack when its sync-service container runs,
# natively (the project's .venv) otherwise.
#   ./sync_cli.sh status | initial-sync | incremental-sync | reconcile | daemon | test | help ...
# In the stack, paths given to a command are paths inside the container: write under /app/data
# (the sync-data volume), e.g. export-csv --out /app/data/exports/mine.csv.
set -euo pipefail
cd "$(dirname "$0")"

if [ "$#" -eq 0 ]; then
  set -- help
fi

compose_running() {
  command -v docker >/dev/null 2>&1 || return 1
  docker info >/dev/null 2>&1 || return 1
  [ -n "$(docker compose ps --status running --quiet sync-service 2>/dev/null)" ]
}

if [ "${SYNC_CLI_NATIVE:-0}" != "1" ] && compose_running; then
  if [ "$1" = "daemon" ]; then
    # A second daemon in the container could not bind METRICS_PORT and would exit 2.
    echo "the sync-service container already runs the daemon: following its log" \
         "(Ctrl-C stops following, not the daemon)" >&2
    exec docker compose logs -f sync-service
  fi
  # A TTY only when both ends are terminals: under cron or in a pipe, docker would refuse one.
  if [ -t 0 ] && [ -t 1 ]; then
    exec docker compose exec sync-service python -m sync_service.main "$@"
  fi
  exec docker compose exec -T sync-service python -m sync_service.main "$@"
fi

if [ ! -x .venv/bin/python ]; then
  echo "no Compose stack running and no .venv: run 'make install' first" >&2
  exit 2
fi
exec .venv/bin/python -m sync_service.main "$@"
