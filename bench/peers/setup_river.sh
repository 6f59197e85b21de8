#!/usr/bin/env bash
# Create bench/.venv-river: River (online ML) for bench/ftrl_river.py. Bench-only peer, never a
# recforge dependency. Idempotent; override the interpreter with PYTHON=...
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
VENV="$BENCH_DIR/.venv-river"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q river==0.26.1 numpy==2.4.6
"$VENV/bin/python" -c "import river; print('[setup] river', river.__version__)"
