#!/usr/bin/env bash
# Installs TorchRec (the `torchrec` extra, for `train.distributed.embeddings: torchrec`) into recforge's Python
# without replacing its torch. Called by scripts/setup.sh; idempotent; safe to run alone.
#
# Why not `pip install recforge[torchrec]` on CPU: torchrec's metadata asks for `fbgemm-gpu`, a CUDA wheel, and its
# dependencies may pull another torch. So on a CPU torch: torchrec 1.9.2 with --no-deps beside fbgemm-gpu-cpu 1.8.0
# (torchrec 1.9.0 fails to load its kernels with torch 2.13), then torchrec's own dependencies under a constraint
# that pins the installed torch. If the wheels cannot be fetched it says so and exits 0: recforge works without
# TorchRec and its TorchRec tests skip, naming this script.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/python.sh
TORCHREC=1.9.2
FBGEMM_CPU=1.8.0
DEPS=("tensordict==0.15.3" "torchmetrics==1.0.3" "pyre-extensions==0.0.32" "tqdm")  # torchrec's own, minus fbgemm-gpu

loads() { "$PY" -c "import torchrec, sys; from torchrec.distributed import DistributedModelParallel; sys.exit(torchrec.__version__ != '$TORCHREC')" 2>/dev/null; }
soft_fail() { echo "setup_torchrec: $1; recforge works without it (train.distributed.embeddings: replicated) and its TorchRec tests skip" >&2; exit 0; }

if loads; then echo "torchrec $TORCHREC already installed: kept" >&2; exit 0; fi
TORCH=$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null) || soft_fail "torch is not installed in $PY (run scripts/setup.sh)"
CUDA=$("$PY" -c 'import torch; print(torch.version.cuda or "")')
if [ -n "$CUDA" ]; then
  soft_fail "torch $TORCH is a CUDA build: install \`pip install recforge[torchrec]\` with the fbgemm-gpu wheel for CUDA $CUDA (PyTorch's index) instead"
fi
PINS=$(mktemp)
trap 'rm -f "$PINS"' EXIT
echo "torch==$TORCH" > "$PINS"  # nothing below may replace the installed torch
echo "installing torchrec $TORCHREC + fbgemm-gpu-cpu $FBGEMM_CPU beside torch $TORCH into $PY" >&2
"$PY" -m pip install --retries 1 --timeout 30 --no-deps "torchrec==$TORCHREC" "fbgemm-gpu-cpu==$FBGEMM_CPU" \
  || soft_fail "could not fetch torchrec $TORCHREC / fbgemm-gpu-cpu $FBGEMM_CPU"
"$PY" -m pip install --retries 1 --timeout 30 -c "$PINS" "${DEPS[@]}" || soft_fail "could not fetch torchrec's dependencies (${DEPS[*]})"
# pip then warns "torchrec requires fbgemm-gpu, which is not installed": expected, fbgemm-gpu-cpu provides it
loads || soft_fail "torchrec $TORCHREC is installed but does not load with torch $TORCH (see: $PY -c 'import torchrec.distributed')"
echo "torchrec $TORCHREC ready" >&2
