#!/usr/bin/env bash
# Set up Vigil and run the whole test suite (installs what the tests need first).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f scripts/services.sh ]; then
  bash scripts/services.sh   # Debian packages for the servers that backend tests start on loopback
fi
.venv/bin/ruff check vigil tests bench
.venv/bin/mypy vigil
exec .venv/bin/python -m pytest "$@"
