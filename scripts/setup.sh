#!/usr/bin/env bash
# Installs recforge and its test tools on a fresh machine with Python 3.11 and pip.
# torch is pinned first to the CPU build (a looser pin would pull a multi-GB CUDA wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY -m pip install --quiet "torch==2.13.0"
$PY -m pip install --quiet -e ".[dev]"

# Real services the tests start themselves: Debian's redis-server (the feature-store tests run their own on a
# free port). Idempotent; sudo only when not root and available; the package index is refreshed only if needed.
if ! command -v redis-server >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends redis-server \
    || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends redis-server; }
fi

# A Java runtime for pypmml (the PMML evaluator the GBDT+LR export is checked against).
if ! command -v java >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends openjdk-17-jre-headless; }
fi
