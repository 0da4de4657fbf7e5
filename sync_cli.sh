#!/usr/bin/env bash
# Run a sync_service command: inside the Compose stack when its sync-service container runs,
# natively (the project's .venv) otherwise.
#   ./sync_cli.sh status | initial-sync | incremental-sync | reconcile | daemon | test | help ...
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
  exec docker compose exec sync-service python -m sync_service.main "$@"
fi

if [ ! -x .venv/bin/python ]; then
  echo "no Compose stack running and no .venv: run 'make install' first" >&2
  exit 2
fi
exec .venv/bin/python -m sync_service.main "$@"
