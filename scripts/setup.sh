#!/usr/bin/env bash
# Create .venv and install Vigil with every extra, pinned by constraints.txt. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# pdqhash's wheel is built against NumPy 1.x; built from source it works with NumPy 2.
.venv/bin/python -m pip install --quiet --no-binary pdqhash -c constraints.txt -e ".[all,dev]"
