#!/usr/bin/env bash
# Installs recforge and its test tools (Python 3.10+ and pip; see scripts/python.sh for which Python).
# torch comes first and from PyTorch's CPU wheel index unless a GPU is present: PyPI's default Linux
# wheel is the CUDA build plus ~18 nvidia packages (several GB). RECFORGE_TORCH=cuda | cpu overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python.sh
echo "installing into $PY" >&2

TORCH=${RECFORGE_TORCH:-auto}
if [ "$TORCH" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then TORCH=cuda; else TORCH=cpu; fi
fi
if [ "${RECFORGE_TORCH:-auto}" = auto ] && "$PY" -c "import torch" 2>/dev/null; then
  echo "torch $("$PY" -c 'import torch; print(torch.__version__)') already installed: kept" >&2
else
  case "$TORCH" in  # a wheel on disk (pip's find-links) is used when PyTorch's index cannot be reached
    cpu)  "$PY" -m pip install "torch==2.13.0" --retries 1 --timeout 20 \
            --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple ;;
    cuda) "$PY" -m pip install "torch==2.13.0" ;;
    *)    echo "RECFORGE_TORCH must be cpu, cuda or auto (got $TORCH)" >&2; exit 2 ;;
  esac
fi
"$PY" -m pip install -e ".[dev]"
# TorchRec for the sharded-embedding path (its own script: a CPU torch needs --no-deps and fbgemm-gpu-cpu).
bash scripts/setup_torchrec.sh

# Real services the tests start themselves: Debian's redis-server (the feature-store tests run their own on a
# free port). Idempotent; sudo only when not root and available; the package index is refreshed only if needed.
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
apt_install() {
  $SUDO apt-get install -y --no-install-recommends "$1" || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends "$1"; }
}
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
# A Java runtime for pypmml (the PMML evaluator the GBDT+LR export is checked against).
command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
# Debian's chromium for the Studio's browser test (Playwright drives it; its own browser downloads are not used).
command -v chromium >/dev/null 2>&1 || apt_install chromium

# Apache Airflow 3 in its own venv (./.venv-airflow) for the exported-DAG test of `recforge pipeline export-airflow`;
# idempotent (kept when that Airflow version is there). RECFORGE_AIRFLOW=0 skips it (that test then skips).
if [ "${RECFORGE_AIRFLOW:-1}" != 0 ]; then bash scripts/setup_airflow.sh; fi

setup_hash > "$STAMP"  # scripts/test.sh skips the install while this still matches
