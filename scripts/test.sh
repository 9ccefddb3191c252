#!/usr/bin/env bash
# The whole check, from a fresh clone: a virtualenv with the test extras, ruff, mypy (strict),
# then pytest (which also runs every sample, the demo command and the docs checks).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test,bench]"

echo "== ruff"
.venv/bin/ruff check ipsmtp tests samples bench
echo "== mypy (strict)"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest -q "$@"
