"""Build the benchmark's pre-split MovieLens-100k CTR data from RecBole atomic files.

Protocol (RecBole's context-aware quick-start on ml-100k): drop rating == 3, label = rating >= 4,
join user (age, gender, occupation) and item (release_year, genre) features, then one global
random 8:1:1 split (valid and test get floor(0.1 * n) rows each, train the rest, as RecBole's
``_calcu_split_ids`` does).

Output: OUT_DIR/{train,valid,test}.parquet with columns
user_id, item_id, age, gender, occupation, release_year, genre, label — see ``SPLIT_COLUMNS``.

Usage: python make_ml100k_split.py DATA_DIR OUT_DIR [--seed 2020]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

SPLIT_COLUMNS: dict[str, str] = {
    "user_id": "string",
    "item_id": "string",
    "age": "int64",
    "gender": "string",
    "occupation": "string",
    "release_year": "string",
    "genre": "string",
    "label": "int64",
}
SPLIT_NAMES = ("train", "valid", "test")


def read_atomic(path: Path) -> pd.DataFrame:
    """Read a RecBole atomic file as strings, stripping the ``:type`` header suffixes."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    frame.columns = [c.split(":", 1)[0] for c in frame.columns]
    return frame


def build_frame(data_dir: Path) -> pd.DataFrame:
    """Join interactions with user/item features and derive the binary label."""
    inter = read_atomic(data_dir / "ml-100k.inter")
    users = read_atomic(data_dir / "ml-100k.user")
    items = read_atomic(data_dir / "ml-100k.item").rename(columns={"class": "genre"})
    rating = inter["rating"].astype(float)
    inter = inter.loc[rating != 3.0, ["user_id", "item_id"]].assign(
        label=(rating[rating != 3.0] >= 4.0).astype("int64")
    )
    frame = inter.merge(users[["user_id", "age", "gender", "occupation"]], on="user_id", how="left")
    frame = frame.merge(items[["item_id", "release_year", "genre"]], on="item_id", how="left")
    if frame.isna().any().any():
        raise ValueError("interactions reference users or items missing from the feature files")
    frame["age"] = frame["age"].astype("int64")
    return frame[list(SPLIT_COLUMNS)].astype(SPLIT_COLUMNS).reset_index(drop=True)


def split_frame(frame: pd.DataFrame, seed: int) -> dict[str, pd.DataFrame]:
    """Shuffle globally with ``seed`` and cut 8:1:1 (valid/test floor(0.1 n), train the rest)."""
    order = np.random.default_rng(seed).permutation(len(frame))
    n_eval = int(0.1 * len(frame))
    n_train = len(frame) - 2 * n_eval
    cuts = {"train": order[:n_train], "valid": order[n_train : n_train + n_eval], "test": order[n_train + n_eval :]}
    return {name: frame.iloc[idx].reset_index(drop=True) for name, idx in cuts.items()}


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="folder with ml-100k.inter/.user/.item")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=2020)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, part in split_frame(build_frame(args.data_dir), args.seed).items():
        part.to_parquet(args.out_dir / f"{name}.parquet", index=False)
        print(f"{name}: {len(part)} rows, positive rate {part['label'].mean():.4f}")


if __name__ == "__main__":
    main()
