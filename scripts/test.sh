#!/usr/bin/env bash
# One command: set up everything the tests need, then run the whole suite.
#   ./scripts/test.sh            all tests (SQLite), then the database-backed ones on PostgreSQL
#   ./scripts/test.sh -m 'not slow'   extra pytest arguments go to both runs
# The Docker-backend tests start a private Docker engine (scripts/sandbox-engine.sh) on their own.
set -euo pipefail
cd "$(dirname "$0")/.."
ASH_SETUP_DOCKER=1 ./scripts/setup.sh
./scripts/services.sh

PY=.venv/bin/python
echo "== full suite (SQLite) ==" >&2
$PY -m pytest -p no:cacheprovider "$@"

echo "== database-backed tests on PostgreSQL ==" >&2
DATABASE_URL=${ASH_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test} \
  $PY -m pytest -p no:cacheprovider tests/api "$@"
