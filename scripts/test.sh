#!/usr/bin/env bash
# The project's test command: install (only when pyproject.toml or the set-up changed), lint, layer contract,
# types, then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python.sh
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$(setup_hash)" ] || ! "$PY" -c "import recforge" 2>/dev/null; then
  bash scripts/setup.sh
else
  echo "set-up unchanged since the last scripts/setup.sh (delete $STAMP to force it)" >&2
fi
"$PY" -m ruff check src tests bench
"$PY" -m ruff format --check src tests bench
"$BIN/lint-imports"
"$PY" -m mypy src/recforge
set +e
"$PY" -m pytest -q "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$code"
