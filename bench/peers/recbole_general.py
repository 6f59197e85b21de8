"""Train a RecBole 1.2.1 general-recommendation model on a pre-split data set, full-ranking eval.

Run with ``bench/.venv-recbole/bin/python`` (see ``setup.sh``)::

    recbole_general.py SPLIT_DIR --model ItemKNN --out result.json [--threads 2] [--epochs N]
        [--k 100] [--shrink 0] [--reg-weight 250] [--embedding-size 64] [--learning-rate 0.001]
        [--n-layers 2] [--param KEY=VALUE ...]

Input (split contract): ``SPLIT_DIR/{train,valid,test}.parquet`` with columns user_id (string),
item_id (string), rating (float), timestamp (int64). Every row is a positive: the protocol
(rating >= 3, 10-core users and items, per-user random 8:1:1 split) is already applied, e.g. by
``make_ml100k_general_split.py``. The three parts are written as RecBole atomic files
``.train/.valid/.test.inter`` and loaded through ``benchmark_filename`` with every filter off
(no rating threshold or value interval, no k-core, no duplicate removal), so RecBole neither
re-filters nor re-splits; the runner checks that RecBole kept the row, user and item counts.
Only user_id and item_id are loaded (rating and timestamp are written to the files but unused).

Training and evaluation are RecBole's own: ``Trainer.fit`` with per-epoch validation and early
stopping on ``valid_metric`` (ndcg@10), ``Trainer.evaluate`` in full-ranking mode (every item is
a candidate; RecBole masks the user's train items when scoring valid and train+valid items when
scoring test). Metrics: Recall, NDCG, MRR, Hit, Precision at 10/20/50. Hyper-parameters are
RecBole's defaults (properties/overall.yaml and properties/model/MODEL.yaml) unless a flag is
given; the values used are recorded in the result's ``settings``. The best-valid checkpoint is
kept in memory (no ``torch.save``/``torch.load``), so no ``weights_only`` shim is needed.

Models: ItemKNN, EASE and Pop (computed when the model is constructed; RecBole's
TraditionalTrainer runs one no-op epoch), BPR, LightGCN, MultiVAE (trained with sampled
negatives / user rows), and DSSM: RecBole's DSSM is a context-aware (feature-based, pointwise BCE)
model. It runs here on the id features only (user_id tower, item_id tower), trained with RecBole's
uniform negative sampling (1 negative per positive, label 1/0) and ranked by RecBole's full-sort
fallback (``predict`` on every user-item pair); see README.md for what that does and does not mean.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
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
import yaml

DATASET = "bench_general"
MODELS = ("ItemKNN", "EASE", "BPR", "LightGCN", "MultiVAE", "Pop", "DSSM")
CONTRACT = {"user_id": "str", "item_id": "str", "rating": "float64", "timestamp": "int64"}
FIELD_TYPES = {"user_id": "token", "item_id": "token", "rating": "float", "timestamp": "float"}
METRICS = ["Recall", "NDCG", "MRR", "Hit", "Precision"]
# RecBole 1.2.1 overall.yaml's train_neg_sample_args, set explicitly because the context-aware
# quick-start config (loaded for DSSM) turns negative sampling off.
DEFAULT_NEG_SAMPLING = {"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False, "candidate_num": 0}
# Flags that override one RecBole config key each (None: keep RecBole's default).
HPARAM_FLAGS: list[tuple[str, str, type, str]] = [
    ("--k", "k", int, "ItemKNN neighbourhood size (RecBole default 100)"),
    ("--shrink", "shrink", float, "ItemKNN similarity shrinkage (default 0.0)"),
    ("--reg-weight", "reg_weight", float, "EASE L2 weight (default 250.0); LightGCN reg (1e-05)"),
    ("--embedding-size", "embedding_size", int, "BPR/LightGCN embedding size (default 64); DSSM (10)"),
    ("--n-layers", "n_layers", int, "LightGCN propagation layers (default 2)"),
    ("--learning-rate", "learning_rate", float, "Adam learning rate (default 0.001)"),
    ("--train-batch-size", "train_batch_size", int, "training batch size (default 2048)"),
    ("--eval-batch-size", "eval_batch_size", int, "evaluation batch size (default 4096)"),
    ("--epochs", "epochs", int, "maximum epochs (default 300; ItemKNN/EASE always 1)"),
    ("--stopping-step", "stopping_step", int, "early-stopping patience in evaluations (default 10)"),
]


def parse_args() -> argparse.Namespace:
    """Command line: split folder, model, output, threads/seed, hyper-parameter overrides."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split_dir", type=Path, help="folder with train/valid/test.parquet")
    parser.add_argument("--model", required=True, choices=MODELS)
    parser.add_argument("--out", type=Path, default=Path("result.json"))
    parser.add_argument("--threads", type=int, default=2, help="torch and BLAS threads")
    parser.add_argument("--seed", type=int, default=2020, help="RecBole seed (its default 2020)")
    parser.add_argument("--topk", type=str, default="10,20,50", help="comma-separated cut-offs")
    parser.add_argument("--valid-metric", type=str, default="NDCG@10")
    for flag, _, kind, help_text in HPARAM_FLAGS:
        parser.add_argument(flag, type=kind, default=None, help=help_text)
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other RecBole config key (VALUE parsed as YAML), e.g. --param mlp_hidden_size=[128,128]",
    )
    args = parser.parse_args()
    args.topk = [int(x) for x in args.topk.split(",") if x.strip()]
    overrides: dict[str, Any] = {}
    for _, key, _, _ in HPARAM_FLAGS:
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            parser.error(f"--param expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    args.overrides = overrides
    return args


def load_general_split(split_dir: Path) -> dict[str, pd.DataFrame]:
    """Read the three parts and check the general split contract (columns, no duplicate pairs)."""
    parts: dict[str, pd.DataFrame] = {}
    for name in pc.SPLIT_NAMES:
        frame = pd.read_parquet(split_dir / f"{name}.parquet")
        missing = set(CONTRACT) - set(frame.columns)
        if missing:
            raise ValueError(f"{name}.parquet lacks columns {sorted(missing)}")
        frame = frame[list(CONTRACT)].astype(CONTRACT).reset_index(drop=True)
        for col in ("user_id", "item_id"):
            if frame[col].str.contains(r"[\t\n\r]").any():
                raise ValueError(f"{name}.{col} contains tabs or newlines; cannot write atomic files")
        parts[name] = frame
    everything = pd.concat(parts.values(), ignore_index=True)
    dups = int(everything.duplicated(["user_id", "item_id"]).sum())
    if dups:
        raise ValueError(f"{dups} user-item pairs occur more than once across train/valid/test")
    return parts


def write_dataset(parts: dict[str, pd.DataFrame], root: Path) -> Path:
    """Write ``root/DATASET/DATASET.{train,valid,test}.inter`` (tab-separated, typed header)."""
    folder = root / DATASET
    folder.mkdir(parents=True, exist_ok=True)
    header = "\t".join(f"{c}:{t}" for c, t in FIELD_TYPES.items())
    for name, frame in parts.items():
        body = frame[list(FIELD_TYPES)].to_csv(sep="\t", header=False, index=False, lineterminator="\n")
        (folder / f"{DATASET}.{name}.inter").write_text(header + "\n" + body)
    return root


def recbole_config(args: argparse.Namespace, data_root: Path) -> dict[str, Any]:
    """RecBole config: pre-split files, every filter off, full ranking, CPU, RecBole defaults otherwise."""
    config: dict[str, Any] = {
        "data_path": str(data_root),
        "benchmark_filename": list(pc.SPLIT_NAMES),
        "load_col": {"inter": ["user_id", "item_id"]},
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        # No filtering or relabelling: the split already applied the protocol.
        "threshold": None,
        "val_interval": None,
        "rm_dup_inter": None,
        "user_inter_num_interval": None,
        "item_inter_num_interval": None,
        "filter_inter_by_user_or_item": False,
        # Ignored with benchmark_filename except group_by/mode; stated for the record.
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"},
        "metrics": METRICS,
        "topk": args.topk,
        "valid_metric": args.valid_metric,
        "train_neg_sample_args": dict(DEFAULT_NEG_SAMPLING),
        "seed": args.seed,
        "reproducibility": True,
        "use_gpu": False,
        "gpu_id": "",
        "worker": 0,
        "show_progress": False,
        "state": "WARNING",
        "checkpoint_dir": str(data_root / "saved"),
        "save_dataset": False,
        "save_dataloaders": False,
        "log_wandb": False,
    }
    config.update(args.overrides)
    return config


def patch_recbole_compat() -> None:
    """Shims for RecBole 1.2.1 on numpy 2 / scipy >= 1.12 (only what is missing is added)."""
    pc.patch_numpy_aliases()
    import scipy.sparse as sp

    if not hasattr(sp.dok_matrix, "_update"):
        # LightGCN fills its adjacency with the private dict-update scipy dropped in 1.12.
        def _update(self: Any, data: dict) -> None:
            self._dict.update(data)

        sp.dok_matrix._update = _update


def model_defaults(recbole_dir: Path, model: str) -> dict[str, Any]:
    """RecBole's own defaults for the model (properties/model/MODEL.yaml)."""
    path = recbole_dir / "properties" / "model" / f"{model}.yaml"
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def jsonable(value: Any) -> Any:
    """Config values as plain JSON (enums and other objects as strings)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def metric_dict(result: dict[str, Any]) -> dict[str, float]:
    """RecBole's evaluate() output as ``{'recall@10': float, ...}``."""
    return {str(k).lower(): float(v) for k, v in result.items()}


def main() -> None:
    """Load the split, train with RecBole's Trainer, evaluate valid/test in full ranking, write JSON."""
    wall_start = time.perf_counter()
    args = parse_args()
    out, split_dir = args.out.resolve(), args.split_dir.resolve()
    parts = load_general_split(split_dir)
    everything = pd.concat(parts.values(), ignore_index=True)
    n_users, n_items = everything["user_id"].nunique(), everything["item_id"].nunique()

    patch_recbole_compat()
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.cuda.amp.GradScaler deprecation
    import recbole
    import scipy
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.evaluator import Evaluator
    from recbole.utils import ModelType, get_model, get_trainer, init_seed
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    recbole_dir = Path(recbole.__file__).parent
    # RecBole's Trainer creates log_tensorboard/ and saved/ under the cwd: keep them in the temp dir.
    with (
        tempfile.TemporaryDirectory(prefix="recbole-general-") as tmp,
        contextlib.chdir(tmp),
        threadpool_limits(limits=args.threads),
    ):
        data_root = write_dataset(parts, Path(tmp))
        argv, sys.argv = sys.argv, sys.argv[:1]  # Config also parses --key=value from sys.argv
        try:
            config = Config(model=args.model, dataset=DATASET, config_dict=recbole_config(args, data_root))
        finally:
            sys.argv = argv
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        kept = [int(n) for n in dataset.file_size_list]
        expected = [len(parts[n]) for n in pc.SPLIT_NAMES]
        # user_num/item_num count RecBole's [PAD] id 0.
        if kept != expected or len(dataset.inter_feat) != sum(expected):
            raise RuntimeError(f"RecBole changed the split sizes: {kept} (+{len(dataset.inter_feat)}) vs {expected}")
        if (dataset.user_num - 1, dataset.item_num - 1) != (n_users, n_items):
            raise RuntimeError(
                f"RecBole changed the id sets: {dataset.user_num - 1} users, {dataset.item_num - 1} items, "
                f"split has {n_users}, {n_items}"
            )
        train_data, valid_data, test_data = data_preparation(config, dataset)
        loader_rows = [len(d._dataset) for d in (train_data, valid_data, test_data)]
        if loader_rows != expected:
            raise RuntimeError(f"RecBole's dataloaders hold {loader_rows} rows, split has {expected}")

        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        fit_start = time.perf_counter()
        model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
        build_seconds = time.perf_counter() - fit_start
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        traditional = config["MODEL_TYPE"] == ModelType.TRADITIONAL

        # Time the training loop alone (RecBole's fit interleaves validation) ...
        epoch_seconds: list[float] = []
        train_epoch = trainer._train_epoch

        def timed_train_epoch(*a: Any, **kw: Any) -> Any:
            start = time.perf_counter()
            loss = train_epoch(*a, **kw)
            epoch_seconds.append(time.perf_counter() - start)
            return loss

        trainer._train_epoch = timed_train_epoch

        # ... and keep the best-valid checkpoint in memory instead of torch.save (same content
        # RecBole saves and reloads: state_dict plus the model's other_parameter()).
        best: dict[str, Any] = {}

        def save_in_memory(epoch: int, verbose: bool = True, **kw: Any) -> None:
            best["epoch"] = epoch
            best["state_dict"] = copy.deepcopy(model.state_dict())
            # Traditional models are fixed at construction; copying their item-item matrices is waste.
            best["other"] = None if traditional else copy.deepcopy(model.other_parameter())

        trainer._save_checkpoint = save_in_memory
        valid_curve: list[float] = []
        load_before = pc.load_average()
        loop_start = time.perf_counter()
        trainer.fit(
            train_data,
            valid_data,
            verbose=False,
            saved=True,
            show_progress=False,
            callback_fn=lambda epoch, score: valid_curve.append(float(score)),
        )
        fit_loop_seconds = time.perf_counter() - loop_start
        load_after = pc.load_average()
        if not best:
            raise RuntimeError("RecBole's fit never saved a checkpoint (no valid evaluation?)")
        model.load_state_dict(best["state_dict"])
        if best["other"] is not None:
            model.load_other_parameter(best["other"])

        # Final valid/test scores at 6 decimals (fit compared them at RecBole's default 4).
        config["metric_decimal_place"] = 6
        trainer.evaluator = Evaluator(config)
        eval_start = time.perf_counter()
        valid = metric_dict(trainer.evaluate(valid_data, load_best_model=False, show_progress=False))
        test = metric_dict(trainer.evaluate(test_data, load_best_model=False, show_progress=False))
        eval_seconds = time.perf_counter() - eval_start
        trainer.tensorboard.close()

        defaults = model_defaults(recbole_dir, args.model)
        general_keys = (
            "epochs",
            "stopping_step",
            "eval_step",
            "learner",
            "learning_rate",
            "weight_decay",
            "train_batch_size",
            "eval_batch_size",
            "train_neg_sample_args",
            "valid_metric",
            "topk",
            "metrics",
            "eval_args",
            "seed",
        )
        used = {k: jsonable(config[k]) for k in (*defaults, *general_keys, *args.overrides)}
        model_type = str(config["MODEL_TYPE"])
        input_type = str(config["MODEL_INPUT_TYPE"])
        feature_fields = getattr(model, "field_names", None)

    rows = {n: len(p) for n, p in parts.items()}
    result = {
        "peer": "recbole",
        "model": args.model,
        "test": test,
        "valid": valid,
        "fit_seconds": build_seconds + sum(epoch_seconds),
        "wall_seconds": time.perf_counter() - wall_start,
        "peak_rss_mb": pc.peak_rss_mb(),
        "rows": rows,
        "users": n_users,
        "items": n_items,
        "recbole_kept_rows": dict(zip(pc.SPLIT_NAMES, kept, strict=True)),
        "best_epoch": best["epoch"] + 1,
        "epochs_run": len(epoch_seconds),
        "valid_score_per_epoch": valid_curve,
        "timing": {
            "model_build_seconds": build_seconds,
            "train_epoch_seconds": [round(t, 4) for t in epoch_seconds],
            "fit_loop_seconds_with_validation": fit_loop_seconds,
            "final_eval_seconds": eval_seconds,
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        "settings": {
            "split_dir": str(split_dir),
            "threads": args.threads,
            "flag_overrides": jsonable(args.overrides),
            "recbole_config_used": used,
            "recbole_model_defaults": jsonable(defaults),
            "model_type": model_type,
            "model_input_type": input_type,
            "context_feature_fields": jsonable(feature_fields),
            "fit_seconds_definition": "model construction (ItemKNN/EASE compute here) + RecBole _train_epoch "
            "calls; excludes per-epoch validation and final evaluation",
            "evaluation": "RecBole full ranking over all items; valid masks train items, test masks "
            "train+valid items; users without positives in the part are skipped",
            "best_checkpoint": "kept in memory (state_dict + other_parameter), restored before evaluation",
        },
        "environment": pc.environment(
            recbole=recbole.__version__,
            torch=torch.__version__,
            numpy=np.__version__,
            pandas=pd.__version__,
            scipy=scipy.__version__,
        ),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"[recbole {args.model}] test ndcg@10={test.get('ndcg@10', float('nan')):.4f} "
        f"recall@10={test.get('recall@10', float('nan')):.4f} best_epoch={result['best_epoch']}"
        f"/{result['epochs_run']} fit={result['fit_seconds']:.1f}s wall={result['wall_seconds']:.1f}s "
        f"peak_rss={result['peak_rss_mb']:.0f} MB -> {out}"
    )


if __name__ == "__main__":
    main()
