"""Train DeepCTR-Torch 0.3.0's DeepFM on a pre-split CTR data set and report test AUC/logloss.

Run with ``bench/.venv-deepctr/bin/python`` (see ``setup.sh``)::

    deepctr_deepfm.py SPLIT_DIR --epochs 10 --batch-size 2048 --dim 16 --mlp 128,128,128 \
        --dropout 0.2 --lr 0.001 --threads 2 --out result.json

Features match the RecBole runner: user_id, item_id, age, gender, occupation, release_year as
SparseFeat (one vocabulary per field over all three splits, as RecBole's token remapping does) and
genre as a mean-pooled VarLenSparseFeat; all feed both the linear (first-order) and the FM/DNN
parts. Each epoch is one ``model.fit(epochs=1)`` call (timed alone; no training metrics, so fit
does no per-batch metric work), then valid is scored with ``model.predict``; the best-valid-AUC
weights are kept in memory and scored on test.

DeepCTR's DeepFM defaults L2 on embeddings and the linear part to 1e-5; ``--l2-reg`` defaults to
0 to match RecBole (weight_decay 0). Its loss is binary cross-entropy summed over the batch
(``reduction='sum'``), optimiser Adam with ``--lr``.
"""

from __future__ import annotations

import copy
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
import peer_common as pc
import torch


def encode(parts: dict[str, pd.DataFrame]) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int], int]:
    """Integer-encode every feature; returns per-split model inputs, vocab sizes, genre max length.

    Token fields map to 0..n-1; genre tokens map to 1..G with 0 as padding.
    """
    everything = pd.concat(parts.values(), ignore_index=True)
    tokens = pc.token_features(everything)
    vocab = {f: {v: i for i, v in enumerate(sorted(everything[f].unique()))} for f in tokens}
    genre_lists = {n: p[pc.SEQ_FEATURE].str.split() for n, p in parts.items()}
    genres = sorted({g for lists in genre_lists.values() for row in lists for g in row})
    genre_index = {g: i + 1 for i, g in enumerate(genres)}
    maxlen = max(len(row) for lists in genre_lists.values() for row in lists)
    inputs: dict[str, dict[str, np.ndarray]] = {}
    for name, frame in parts.items():
        x = {f: frame[f].map(vocab[f]).to_numpy(dtype=np.int64) for f in tokens}
        padded = np.zeros((len(frame), maxlen), dtype=np.int64)
        for row, tokens in enumerate(genre_lists[name]):
            padded[row, : len(tokens)] = [genre_index[g] for g in tokens]
        x[pc.SEQ_FEATURE] = padded
        inputs[name] = x
    sizes = {f: len(v) for f, v in vocab.items()}
    sizes[pc.SEQ_FEATURE] = len(genres) + 1
    return inputs, sizes, maxlen


def feature_columns(sizes: dict[str, int], maxlen: int, dim: int) -> list[Any]:
    """DeepCTR feature columns for the token fields and the mean-pooled genre list."""
    from deepctr_torch.inputs import SparseFeat, VarLenSparseFeat

    columns: list[Any] = [
        SparseFeat(f, vocabulary_size=sizes[f], embedding_dim=dim) for f in sizes if f != pc.SEQ_FEATURE
    ]
    genre = SparseFeat(pc.SEQ_FEATURE, vocabulary_size=sizes[pc.SEQ_FEATURE], embedding_dim=dim)
    columns.append(VarLenSparseFeat(genre, maxlen=maxlen, combiner="mean"))
    return columns


def main() -> None:
    """Train, select on valid AUC, score on test, write the result JSON."""
    wall_start = time.perf_counter()
    l2_flag = ("--l2-reg", float, 0.0, "DeepCTR l2_reg_embedding and l2_reg_linear")
    args = pc.parse_args(__doc__.splitlines()[0], extra=[l2_flag])
    out, split_dir = args.out.resolve(), args.split_dir.resolve()
    parts = pc.load_split(split_dir)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)

    warnings.filterwarnings("ignore", category=FutureWarning)
    import deepctr_torch
    from deepctr_torch.models import DeepFM

    inputs, sizes, maxlen = encode(parts)
    labels = {n: p[pc.LABEL].to_numpy(dtype=np.float32) for n, p in parts.items()}
    columns = feature_columns(sizes, maxlen, args.dim)
    model = DeepFM(
        columns,
        columns,
        dnn_hidden_units=tuple(args.mlp),
        dnn_dropout=args.dropout,
        l2_reg_embedding=args.l2_reg,
        l2_reg_linear=args.l2_reg,
        seed=args.seed,
        task="binary",
        device="cpu",
    )
    model.compile(torch.optim.Adam(model.parameters(), lr=args.lr), "binary_crossentropy", metrics=None)

    n_train = len(parts["train"])
    best_auc, best_epoch, best_state = -1.0, 0, None
    valid_aucs: list[float] = []
    epoch_seconds: list[float] = []
    load_before = pc.load_average()
    for epoch in range(args.epochs):
        start = time.perf_counter()
        model.fit(inputs["train"], labels["train"], batch_size=args.batch_size, epochs=1, verbose=0, shuffle=True)
        epoch_seconds.append(time.perf_counter() - start)
        probs = model.predict(inputs["valid"], batch_size=args.eval_batch_size)
        valid_auc = pc.binary_metrics(labels["valid"], probs)["auc"]
        valid_aucs.append(valid_auc)
        if valid_auc > best_auc:
            best_auc, best_epoch, best_state = valid_auc, epoch + 1, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    test = pc.binary_metrics(labels["test"], model.predict(inputs["test"], batch_size=args.eval_batch_size))

    settings = {
        "dim": args.dim,
        "mlp": args.mlp,
        "dropout": args.dropout,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "eval_batch_size": args.eval_batch_size,
        "threads": args.threads,
        "seed": args.seed,
        "optimizer": "adam",
        "l2_reg_embedding": args.l2_reg,
        "l2_reg_linear": args.l2_reg,
        "loss_reduction": "sum",
        "split_dir": str(split_dir),
        "split_rows": {n: len(p) for n, p in parts.items()},
        "vocab_sizes": sizes,
        "genre_maxlen": maxlen,
        "deepctr_deepfm_defaults": {
            "dnn_hidden_units": [256, 128],
            "dnn_dropout": 0.0,
            "l2_reg_embedding": 1e-5,
            "l2_reg_linear": 1e-5,
            "init_std": 1e-4,
            "optimizer": "adam (lr 0.001)",
            "batch_size": 256,
        },
    }
    pc.write_result(
        pc.RunResult(
            peer="deepctr-torch-0.3.0-deepfm",
            auc=test["auc"],
            logloss=test["logloss"],
            peak_rss_mb=pc.peak_rss_mb(),
            **pc.throughput(n_train, epoch_seconds),
            epochs=args.epochs,
            best_epoch=best_epoch,
            settings=settings,
            valid_auc_per_epoch=valid_aucs,
            wall_seconds=time.perf_counter() - wall_start,
            load_average_before=load_before,
            load_average_after=pc.load_average(),
            environment=pc.environment(
                deepctr_torch=deepctr_torch.__version__,
                torch=torch.__version__,
                numpy=np.__version__,
                pandas=pd.__version__,
            ),
        ),
        out,
    )


if __name__ == "__main__":
    main()
