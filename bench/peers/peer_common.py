"""Shared CLI, split loading, metrics and result writing for the peer runners.

Imported by ``recbole_deepfm.py`` and ``deepctr_deepfm.py`` (same folder, so it is on
``sys.path`` when they run as scripts); ``recbole_general.py`` uses the environment/timing
helpers and ``patch_numpy_aliases``. Needs only numpy, pandas, pyarrow and scikit-learn,
which both peer venvs have.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

SPLIT_NAMES = ("train", "valid", "test")
SPLIT_COLUMNS = ("user_id", "item_id", "age", "gender", "occupation", "release_year", "genre", "label")
TOKEN_FEATURES = ("user_id", "item_id", "age", "gender", "occupation", "release_year")
# Side features a data set may lack (ml-latest-small has no user features): a split holds a subset.
OPTIONAL_COLUMNS = ("age", "gender", "occupation", "release_year")
SEQ_FEATURE = "genre"
LABEL = "label"


def parse_args(description: str, extra: list[tuple[str, type, Any, str]] | None = None) -> argparse.Namespace:
    """Parse the flags shared by every peer runner, plus ``extra`` (flag, type, default, help) ones."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("split_dir", type=Path, help="folder with train/valid/test.parquet")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--eval-batch-size", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=16, help="embedding size")
    parser.add_argument("--mlp", type=str, default="128,128,128", help="comma-separated hidden sizes")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--out", type=Path, default=Path("result.json"))
    for flag, kind, default, help_text in extra or []:
        parser.add_argument(flag, type=kind, default=default, help=help_text)
    args = parser.parse_args()
    args.mlp = [int(x) for x in args.mlp.split(",") if x.strip()]
    return args


def load_split(split_dir: Path) -> dict[str, pd.DataFrame]:
    """Read the three split files and check they follow the split contract (optional side columns may be absent,
    but all three files hold the same ones)."""
    parts: dict[str, pd.DataFrame] = {}
    for name in SPLIT_NAMES:
        frame = pd.read_parquet(split_dir / f"{name}.parquet")
        missing = set(SPLIT_COLUMNS) - set(OPTIONAL_COLUMNS) - set(frame.columns)
        if missing:
            raise ValueError(f"{name}.parquet lacks columns {sorted(missing)}")
        columns = [c for c in SPLIT_COLUMNS if c in frame.columns]
        if parts and columns != list(next(iter(parts.values())).columns):
            raise ValueError(f"{name}.parquet has columns {columns}, unlike {SPLIT_NAMES[0]}.parquet")
        frame = frame[columns].copy()
        for col in columns:
            if col != LABEL:
                frame[col] = frame[col].astype(str)
        frame[LABEL] = frame[LABEL].astype("int64")
        parts[name] = frame
    return parts


def token_features(frame: pd.DataFrame) -> list[str]:
    """The single-token feature columns this split holds, in contract order."""
    return [f for f in TOKEN_FEATURES if f in frame.columns]


def binary_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """AUC and mean log loss of predicted click probabilities (probs clipped to [1e-15, 1-1e-15])."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.clip(np.asarray(probs, dtype=np.float64).ravel(), 1e-15, 1 - 1e-15)
    return {"auc": float(roc_auc_score(y, p)), "logloss": float(log_loss(y, p, labels=[0, 1]))}


def patch_numpy_aliases() -> None:
    """Restore aliases removed in numpy 2 that RecBole 1.2.1 touches at import/config time."""
    aliases = {"float_": np.float64, "complex_": np.complex128, "unicode_": np.str_, "int_": np.int64}
    for name, value in aliases.items():
        if name not in np.__dict__:
            setattr(np, name, value)


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class RunResult:
    """What a runner writes to ``--out``."""

    peer: str
    auc: float
    logloss: float
    train_samples_per_s: float
    peak_rss_mb: float
    epochs: int
    best_epoch: int
    settings: dict[str, Any]
    valid_auc_per_epoch: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    train_samples: int = 0
    train_seconds_per_epoch: list[float] = field(default_factory=list)
    train_samples_per_s_fastest_epoch: float = 0.0
    wall_seconds: float = 0.0
    load_average_before: list[float] = field(default_factory=list)
    load_average_after: list[float] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)


def throughput(n_train: int, epoch_seconds: list[float]) -> dict[str, Any]:
    """Throughput fields of ``RunResult`` from the per-epoch training-loop times.

    ``train_samples_per_s`` is over all epochs; the fastest epoch's rate is a steadier number
    on a shared machine, where other processes slow some epochs down.
    """
    total = sum(epoch_seconds)
    return {
        "train_samples_per_s": n_train * len(epoch_seconds) / total,
        "train_seconds": total,
        "train_samples": n_train * len(epoch_seconds),
        "train_seconds_per_epoch": [round(t, 4) for t in epoch_seconds],
        "train_samples_per_s_fastest_epoch": n_train / min(epoch_seconds),
    }


def load_average() -> list[float]:
    """1/5/15-minute load averages; a value above the thread count means the timing was contended."""
    return [round(x, 2) for x in os.getloadavg()]


def environment(**versions: str) -> dict[str, str]:
    """Interpreter/platform facts plus the given package versions."""
    return {"python": sys.version.split()[0], "platform": platform.platform(), **versions}


def write_result(result: RunResult, out: Path) -> None:
    """Write the result JSON and echo a one-line summary."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(result), indent=2) + "\n")
    print(
        f"[{result.peer}] test auc={result.auc:.4f} logloss={result.logloss:.4f} "
        f"best_epoch={result.best_epoch}/{result.epochs} "
        f"train {result.train_samples_per_s:,.0f} samples/s peak_rss={result.peak_rss_mb:.0f} MB -> {out}"
    )
