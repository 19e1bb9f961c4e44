#!/usr/bin/env bash
# One command: set up, then start Ash on the embedded default (SQLite, in-process runner).
#   ./scripts/serve.sh [--host 127.0.0.1] [--port 4100]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python manage.py serve "$@"
