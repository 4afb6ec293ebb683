#!/usr/bin/env bash
# Set up Vigil on the embedded defaults (SQLite, in-process) and run the demo over generated traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/vigil demo "$@"
