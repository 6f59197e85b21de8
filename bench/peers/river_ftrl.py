"""River peer for bench/ftrl_river.py: FTRL-Proximal logistic regression, one sample at a time.

Reads the hashed stream (idx [N, F] bucket ids, y [N]) that recforge hashed, so both learners see the
same 2^bits feature space. The bias is one of the hashed fields, so River's separately-trained
intercept is switched off (intercept_lr=0) and its own l2 is 0: FTRLProximal holds all regularization.
Times only predict_proba_one + learn_one (building the feature dicts is excluded), in wall and CPU seconds. Runs in
bench/.venv-river (bench/peers/setup_river.sh).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import river
from river import linear_model, optim

parser = argparse.ArgumentParser()
parser.add_argument("stream", help="npz with idx and y")
parser.add_argument("--rows", type=int, required=True)
parser.add_argument("--alpha", type=float, required=True)
parser.add_argument("--beta", type=float, required=True)
parser.add_argument("--l1", type=float, required=True)
parser.add_argument("--l2", type=float, required=True)
parser.add_argument("--out", required=True, help="npy file for the progressive predictions")
args = parser.parse_args()

data = np.load(args.stream)
idx, y = data["idx"][: args.rows], data["y"][: args.rows]
xs = [dict.fromkeys(row, 1.0) for row in idx.tolist()]  # a bucket shared by two fields counts once here
labels = [bool(v) for v in y.tolist()]
model = linear_model.LogisticRegression(
    optimizer=optim.FTRLProximal(alpha=args.alpha, beta=args.beta, l1=args.l1, l2=args.l2), l2=0.0, intercept_lr=0.0
)
preds = np.empty(len(xs))
start, cpu = time.perf_counter(), time.process_time()
for r, (x, label) in enumerate(zip(xs, labels, strict=True)):
    preds[r] = model.predict_proba_one(x)[True]
    model.learn_one(x, label)
seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
np.save(args.out, preds)
print(
    json.dumps(
        {
            "river": river.__version__,
            "rows": len(xs),
            "seconds": seconds,
            "samples_per_s": len(xs) / seconds,
            "samples_per_cpu_s": len(xs) / cpu_seconds,
        }
    )
)
