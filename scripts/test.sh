#!/usr/bin/env bash
# The whole check, from a fresh clone: a virtualenv with the test extras, ruff, mypy (strict),
# the documentation site built with --strict,
# then pytest (which also runs every sample, the demo command and the docs checks).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test,bench,docs]"
# The kerberos extra (python-gssapi) compiles against the system's Kerberos: only where its
# headers are (Debian: libkrb5-dev, which .ci/run installs). Without it the GSSAPI tests skip,
# except under CI=true, where they must run.
if command -v krb5-config >/dev/null 2>&1; then
    .venv/bin/python -m pip install --quiet -e ".[kerberos]"
fi

echo "== ruff"
.venv/bin/ruff check ipsmtp tests samples bench
echo "== mypy (strict)"
.venv/bin/mypy
echo "== docs (mkdocs --strict)"
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet -d "$(mktemp -d)"
echo "== pytest"
.venv/bin/python -m pytest -q "$@"
