#!/usr/bin/env bash
# Installs schemathesis (OpenAPI-driven fuzzing, used by test-reliability/fuzz.reliability.ts) into the
# project's own virtual environment .venv/. Idempotent: returns at once when the pinned version is there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION=4.32.5
if [ -x .venv/bin/schemathesis ] && .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('schemathesis') != '$VERSION')" 2>/dev/null; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check "schemathesis==$VERSION"
.venv/bin/schemathesis --version
