"""Train RecBole 1.2.1's DeepFM on a pre-split CTR data set and report test AUC/logloss.

Run with ``bench/.venv-recbole/bin/python`` (see ``setup.sh``)::

    recbole_deepfm.py SPLIT_DIR --epochs 10 --batch-size 2048 --dim 16 --mlp 128,128,128 \
        --dropout 0.2 --lr 0.001 --threads 2 --out result.json

The split (``make_ml100k_split.py`` contract; a data set without user features, such as ml-latest-small,
leaves age/gender/occupation out) is written out as RecBole atomic files, with the
three interaction files loaded through ``benchmark_filename`` so RecBole keeps the given split
instead of re-splitting. Features: user_id, item_id, age, gender, occupation, release_year
(token) and genre (token_seq, mean-pooled by RecBole); the label is a 0/1 ``label:float`` column,
so no rating threshold is applied. RecBole's own Trainer does the epochs (its ``_train_epoch``,
timed alone); every epoch is scored on valid and the best-valid-AUC weights are kept in memory
and scored on test.

RecBole's DeepFM defaults (recbole/properties/model/DeepFM.yaml and overall.yaml in 1.2.1):
embedding_size 10, mlp_hidden_size [128, 128, 128], dropout_prob 0.2, learning_rate 0.001 (adam),
train_batch_size 2048, eval_batch_size 4096, epochs 300 with stopping_step 10, weight_decay 0.
This runner's defaults differ only in the embedding size (16, the benchmark's common setting)
and the epoch count (10); both are recorded in the result's ``settings``.
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
import torch

DATASET = "bench_split"
# Atomic-file field types for each contract column (the label is written as a float field).
FIELD_TYPES = {
    "user_id": "token",
    "item_id": "token",
    "age": "token",
    "gender": "token",
    "occupation": "token",
    "release_year": "token",
    "genre": "token_seq",
    "label": "float",
}
USER_FIELDS = ["user_id", "age", "gender", "occupation"]
ITEM_FIELDS = ["item_id", "release_year", "genre"]
INTER_FIELDS = ["user_id", "item_id", "label"]


def write_atomic(frame: pd.DataFrame, fields: list[str], path: Path) -> None:
    """Write ``frame[fields]`` as a tab-separated RecBole atomic file with typed headers."""
    header = "\t".join(f"{f}:{FIELD_TYPES[f]}" for f in fields)
    body = frame[fields].to_csv(sep="\t", header=False, index=False, lineterminator="\n")
    path.write_text(header + "\n" + body)


def present(fields: list[str], frame: pd.DataFrame) -> list[str]:
    """The `fields` this split has (ml-latest-small has no user features)."""
    return [f for f in fields if f in frame.columns]


def side_tables(frame: pd.DataFrame) -> dict[str, list[str]]:
    """RecBole side files (suffix -> fields, key first) that carry a feature beyond their key."""
    tables = {"user": present(USER_FIELDS, frame), "item": present(ITEM_FIELDS, frame)}
    return {suffix: fields for suffix, fields in tables.items() if len(fields) > 1}


def write_dataset(parts: dict[str, pd.DataFrame], root: Path) -> Path:
    """Write the split as ``root/DATASET/DATASET.{train,valid,test}.inter`` plus ``.user``/``.item``."""
    folder = root / DATASET
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in parts.items():
        write_atomic(frame, INTER_FIELDS, folder / f"{DATASET}.{name}.inter")
    everything = pd.concat(parts.values(), ignore_index=True)
    for suffix, fields in side_tables(everything).items():
        key = fields[0]
        table = everything[fields].drop_duplicates()
        if table[key].duplicated().any():
            raise ValueError(f"{key} has conflicting side features across rows")
        write_atomic(table, fields, folder / f"{DATASET}.{suffix}")
    return root


def recbole_config(args: Any, data_root: Path, columns: pd.DataFrame) -> dict[str, Any]:
    """RecBole config dict: pre-split benchmark files, labeled (pointwise) evaluation, CPU."""
    return {
        "data_path": str(data_root),
        "benchmark_filename": list(pc.SPLIT_NAMES),
        "load_col": {"inter": INTER_FIELDS, **side_tables(columns)},
        "LABEL_FIELD": "label",
        "threshold": None,
        "RATING_FIELD": "rating",
        "TIME_FIELD": "timestamp",
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": None, "mode": "labeled"},
        "train_neg_sample_args": None,
        "metrics": ["AUC", "LogLoss"],
        "valid_metric": "AUC",
        "metric_decimal_place": 6,
        "embedding_size": args.dim,
        "mlp_hidden_size": args.mlp,
        "dropout_prob": args.dropout,
        "learning_rate": args.lr,
        "weight_decay": args.weight_decay,
        "train_batch_size": args.batch_size,
        "eval_batch_size": args.eval_batch_size,
        "epochs": args.epochs,
        "seed": args.seed,
        "reproducibility": True,
        "use_gpu": False,
        "gpu_id": "",
        "worker": 0,
        "show_progress": False,
        "state": "WARNING",
        "checkpoint_dir": str(data_root / "saved"),
    }


@torch.no_grad()
def predict(model: Any, loader: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predicted probabilities over a RecBole labeled-mode eval dataloader."""
    model.eval()
    labels, probs = [], []
    for batch in loader:
        interaction = batch[0] if isinstance(batch, tuple) else batch
        probs.append(model.predict(interaction).cpu().numpy())
        labels.append(interaction["label"].cpu().numpy())
    return np.concatenate(labels), np.concatenate(probs)


def main() -> None:
    """Train, select on valid AUC, score on test, write the result JSON."""
    wall_start = time.perf_counter()
    args = pc.parse_args(
        __doc__.splitlines()[0],
        [
            (
                "--stopping-step",
                int,
                0,
                "stop after this many epochs without a better valid AUC (RecBole's 10; 0: off)",
            ),
            (
                "--weight-decay",
                float,
                0.0,
                "Adam weight decay on every parameter (RecBole's `weight_decay`, default 0)",
            ),
        ],
    )
    out, split_dir = args.out.resolve(), args.split_dir.resolve()
    parts = pc.load_split(split_dir)

    pc.patch_numpy_aliases()
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.cuda.amp.GradScaler deprecation
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    # RecBole's Trainer creates log_tensorboard/ and saved/ under the cwd: keep them in the temp dir.
    with tempfile.TemporaryDirectory(prefix="recbole-peer-") as tmp, contextlib.chdir(tmp):
        data_root = write_dataset(parts, Path(tmp))
        argv, sys.argv = sys.argv, sys.argv[:1]  # Config also parses --key=value from sys.argv
        try:
            config = Config(
                model="DeepFM", dataset=DATASET, config_dict=recbole_config(args, data_root, parts["train"])
            )
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
        fields = {
            "token": model.token_field_names,
            "token_seq": model.token_seq_field_names,
            "float": model.float_field_names,
        }

        n_train = len(train_data._dataset)
        best_auc, best_epoch, best_state = -1.0, 0, None
        valid_aucs: list[float] = []
        epoch_seconds: list[float] = []
        load_before = pc.load_average()
        for epoch in range(args.epochs):
            start = time.perf_counter()
            trainer._train_epoch(train_data, epoch, show_progress=False)
            epoch_seconds.append(time.perf_counter() - start)
            valid_auc = pc.binary_metrics(*predict(model, valid_data))["auc"]
            valid_aucs.append(valid_auc)
            if valid_auc > best_auc:
                best_auc, best_epoch, best_state = valid_auc, epoch + 1, copy.deepcopy(model.state_dict())
            if args.stopping_step and epoch + 1 - best_epoch > args.stopping_step:
                break  # RecBole's rule: more than `stopping_step` epochs without a better valid score
        model.load_state_dict(best_state)
        test = pc.binary_metrics(*predict(model, test_data))
        native = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
        trainer.tensorboard.close()

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
        "weight_decay": args.weight_decay,
        "stopping_step": args.stopping_step,
        "split_dir": str(split_dir),
        "split_rows": {n: len(p) for n, p in parts.items()},
        "recbole_fields": fields,
        "recbole_native_test": {k: float(v) for k, v in native.items()},
        "recbole_deepfm_defaults": {
            "embedding_size": 10,
            "mlp_hidden_size": [128, 128, 128],
            "dropout_prob": 0.2,
            "learning_rate": 0.001,
            "train_batch_size": 2048,
            "epochs": 300,
            "stopping_step": 10,
        },
    }
    pc.write_result(
        pc.RunResult(
            peer="recbole-1.2.1-deepfm",
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
                recbole=recbole.__version__, torch=torch.__version__, numpy=np.__version__, pandas=pd.__version__
            ),
        ),
        out,
    )


if __name__ == "__main__":
    main()
