"""Train RecBole 1.2.1's DIN on a pre-split CTR data set with a behavior history and report test AUC/logloss.

Run with ``bench/.venv-recbole/bin/python`` (see ``setup.sh``)::

    recbole_din.py SPLIT_DIR --epochs 10 --batch-size 2048 --dim 16 --mlp 128,128,128 \
        --dropout 0.2 --lr 0.001 --threads 2 --max-len 50 --out result.json

The split follows ``make_ml100k_split.py``'s contract plus a ``history`` column (space-joined item ids,
oldest first, the items the user rated before the row). It is written as RecBole atomic files whose
interactions carry ``item_id_list:token_seq`` (an alias of item_id, so both share one vocabulary) and
loaded through ``benchmark_filename``, so RecBole's SequentialDataset keeps the given split and the
given histories instead of re-splitting and re-augmenting. RecBole's DIN embeds item_id, release_year
and genre for the target and every history element (its ContextSeqEmbLayer) and, as in its source,
uses the user features only through the history. Epochs, timing and best-valid selection are as in
``recbole_deepfm.py``, whose atomic-file writer and predictor this runner reuses.

RecBole's DIN defaults (recbole/properties/model/DIN.yaml): embedding_size 10, mlp_hidden_size
[256, 256, 256], dropout_prob 0.0, pooling_mode mean; the runner passes the bench's common settings.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import peer_common as pc
import recbole_deepfm as deepfm
import torch

HISTORY = "history"
SEQ_FIELD = "item_id_list"
INTER_FIELDS = ["user_id", "item_id", "label", SEQ_FIELD]


def write_dataset(parts: dict[str, pd.DataFrame], root: Path) -> Path:
    """The DeepFM runner's atomic files, with the history as the interactions' item_id_list."""
    deepfm.FIELD_TYPES[SEQ_FIELD] = "token_seq"
    folder = root / deepfm.DATASET
    deepfm.write_dataset(parts, root)
    for name, frame in parts.items():
        deepfm.write_atomic(frame, INTER_FIELDS, folder / f"{deepfm.DATASET}.{name}.inter")
    return root


def recbole_config(args: Any, data_root: Path) -> dict[str, Any]:
    config = deepfm.recbole_config(args, data_root)
    config["load_col"]["inter"] = INTER_FIELDS
    config["alias_of_item_id"] = [SEQ_FIELD]
    config["MAX_ITEM_LIST_LENGTH"] = args.max_len
    config["eval_args"] = {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO", "group_by": None, "mode": "labeled"}
    config["pooling_mode"] = "mean"
    return config


def load_parts(split_dir: Path, max_len: int) -> dict[str, pd.DataFrame]:
    """The contract columns plus the history, cut to the newest `max_len` items."""
    parts = pc.load_split(split_dir)
    for name, frame in parts.items():
        history = pd.read_parquet(split_dir / f"{name}.parquet", columns=[HISTORY])[HISTORY].astype(str)
        frame[SEQ_FIELD] = history.str.split().map(lambda items: " ".join(items[-max_len:])).to_numpy()
    return parts


def main() -> None:
    """Train, select on valid AUC, score on test, write the result JSON."""
    wall_start = time.perf_counter()
    args = pc.parse_args(__doc__.splitlines()[0], [("--max-len", int, 50, "history length")])
    out, split_dir = args.out.resolve(), args.split_dir.resolve()
    parts = load_parts(split_dir, args.max_len)

    pc.patch_numpy_aliases()
    warnings.filterwarnings("ignore", category=FutureWarning)
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    with tempfile.TemporaryDirectory(prefix="recbole-peer-") as tmp, contextlib.chdir(tmp):
        data_root = write_dataset(parts, Path(tmp))
        argv, sys.argv = sys.argv, sys.argv[:1]
        try:
            config = Config(model="DIN", dataset=deepfm.DATASET, config_dict=recbole_config(args, data_root))
        finally:
            sys.argv = argv
        init_seed(config["seed"], config["reproducibility"])
        torch.set_num_threads(args.threads)
        dataset = create_dataset(config)
        if [int(n) for n in dataset.file_size_list] != [len(parts[n]) for n in pc.SPLIT_NAMES]:
            raise RuntimeError(f"RecBole changed the split sizes: {dataset.file_size_list}")
        train_data, valid_data, test_data = data_preparation(config, dataset)

        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

        n_train = len(train_data._dataset)
        best_auc, best_epoch, best_state = -1.0, 0, None
        valid_aucs: list[float] = []
        epoch_seconds: list[float] = []
        load_before = pc.load_average()
        for epoch in range(args.epochs):
            start = time.perf_counter()
            trainer._train_epoch(train_data, epoch, show_progress=False)
            epoch_seconds.append(time.perf_counter() - start)
            valid_auc = pc.binary_metrics(*deepfm.predict(model, valid_data))["auc"]
            valid_aucs.append(valid_auc)
            if valid_auc > best_auc:
                best_auc, best_epoch, best_state = valid_auc, epoch + 1, copy.deepcopy(model.state_dict())
        model.load_state_dict(best_state)
        test_labels, test_probs = deepfm.predict(model, test_data)
        if len(test_labels) != len(parts["test"]):
            raise RuntimeError(f"RecBole scored {len(test_labels)} test rows, the split has {len(parts['test'])}")
        test = pc.binary_metrics(test_labels, test_probs)
        trainer.tensorboard.close()

    settings = {
        "dim": args.dim,
        "mlp": args.mlp,
        "dropout": args.dropout,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "seed": args.seed,
        "max_len": args.max_len,
        "split_dir": str(split_dir),
        "split_rows": {n: len(p) for n, p in parts.items()},
        "recbole_din_defaults": {"embedding_size": 10, "mlp_hidden_size": [256, 256, 256], "dropout_prob": 0.0},
    }
    pc.write_result(
        pc.RunResult(
            peer="recbole-1.2.1-din",
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
            environment=pc.environment(recbole=recbole.__version__, torch=torch.__version__, numpy=np.__version__),
        ),
        out,
    )


if __name__ == "__main__":
    main()
