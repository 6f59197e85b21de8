#!/usr/bin/env bash
# Create the peer virtual environments used by the DeepFM benchmark runners.
#
#   bench/.venv-recbole  RecBole 1.2.1 (+ pandas/pyarrow for reading the split parquet files)
#   bench/.venv-deepctr  DeepCTR-Torch 0.3.0 (+ pandas/pyarrow)
#
# Idempotent: an existing venv is reused and pip only installs what is missing or differs.
# torch is installed first, on its own, so pip picks the CPU wheel (find-links) instead of
# resolving a CUDA build as a dependency of the peer.  Override the interpreter with PYTHON=...
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

# Shared pins (versions verified together on Python 3.11, CPU only).
COMMON=(numpy==2.4.6 pandas==2.2.3 pyarrow==26.0.1 scikit-learn==1.9.1 scipy==1.17.1)

make_venv() {
    local venv="$1"
    if [[ ! -x "$venv/bin/python" ]]; then
        echo "[setup] creating $venv"
        "$PYTHON" -m venv "$venv"
    else
        echo "[setup] reusing $venv"
    fi
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q "$TORCH_SPEC"
}

# RecBole 1.2.1 declares pandas>=1.3 but is known to work with pandas==2.2.3; its own pins
# (colorlog==4.7.2, colorama==0.4.4, ray<=2.6.3) are resolved by pip.
RECBOLE_VENV="$BENCH_DIR/.venv-recbole"
make_venv "$RECBOLE_VENV"
"$RECBOLE_VENV/bin/python" -m pip install -q "$TORCH_SPEC" recbole==1.2.1 "${COMMON[@]}"
"$RECBOLE_VENV/bin/python" -c "import recbole, torch; print('[setup] recbole', recbole.__version__, 'torch', torch.__version__)"

# deepctr_torch imports requests (version check on import) without declaring it.
DEEPCTR_VENV="$BENCH_DIR/.venv-deepctr"
make_venv "$DEEPCTR_VENV"
"$DEEPCTR_VENV/bin/python" -m pip install -q "$TORCH_SPEC" deepctr-torch==0.3.0 requests==2.34.2 "${COMMON[@]}"
"$DEEPCTR_VENV/bin/python" -c "import deepctr_torch, torch; print('[setup] deepctr-torch', deepctr_torch.__version__, 'torch', torch.__version__)"
