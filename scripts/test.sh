#!/usr/bin/env bash
# The project's test command: install, lint, layer contract, types, then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/setup.sh
$PY -m ruff check src tests bench
$PY -m ruff format --check src tests bench
lint-imports
$PY -m mypy src/recforge
set +e
$PY -m pytest -q "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$code"
