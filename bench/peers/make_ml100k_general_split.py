"""Build the recall benchmark's pre-split MovieLens-100k data (RecBole general protocol).

Protocol (RecBole's general-recommendation setting, applied here so no runner re-filters):

1. keep interactions with rating >= 3 (RecBole ``val_interval: {rating: "[3,inf)"}``); every kept
   row is a positive, the rating column is kept as information only;
2. iterative 10-core filtering of users and items (``user_inter_num_interval: "[10,inf)"``,
   ``item_inter_num_interval: "[10,inf)"``), done as RecBole's ``_filter_by_inter_num`` does it:
   each round bans the users *and* the items below 10 interactions at once, drops their rows, and
   repeats until nothing is banned;
3. per-user random 8:1:1 split (RecBole ``eval_args: {split: {RS: [0.8, 0.1, 0.1]}, order: RO,
   group_by: user}``): one global random permutation (``--seed``), rows grouped by user keeping the
   permuted order, and each user's rows cut with RecBole's ``Dataset._calcu_split_ids`` rounding:
   valid and test get ``int(0.1 * n)`` rows each, train the rest, and a part whose share
   ``0.1 * n`` lies in (0, 1) gets one row taken from train (only for users with n < 10, which
   10-core filtering leaves none of).

The permutation is numpy's, not RecBole's torch one, so the split is a different random draw
from the one RecBole makes itself with the same seed (same protocol, different sample).

Output: OUT_DIR/{train,valid,test}.parquet with columns user_id (string), item_id (string),
rating (float64), timestamp (int64), the split contract of ``recbole_general.py``.

Usage: python make_ml100k_general_split.py DATA_DIR OUT_DIR [--seed 2020] [--min-rating 3] [--core 10]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

SPLIT_COLUMNS: dict[str, str] = {"user_id": "string", "item_id": "string", "rating": "float64", "timestamp": "int64"}
SPLIT_NAMES = ("train", "valid", "test")
RATIOS = (0.8, 0.1, 0.1)


def read_inter(path: Path) -> pd.DataFrame:
    """Read a RecBole ``.inter`` atomic file, stripping the ``:type`` header suffixes."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    frame.columns = [c.split(":", 1)[0] for c in frame.columns]
    frame["rating"] = frame["rating"].astype("float64")
    frame["timestamp"] = frame["timestamp"].astype("float64").astype("int64")
    return frame[list(SPLIT_COLUMNS)]


def k_core(frame: pd.DataFrame, core: int) -> pd.DataFrame:
    """Iterative k-core filter of users and items, as RecBole's ``_filter_by_inter_num``."""
    user_num = Counter(frame["user_id"].values)
    item_num = Counter(frame["item_id"].values)
    while True:
        ban_users = {u for u, n in user_num.items() if n < core}
        ban_items = {i for i, n in item_num.items() if n < core}
        if not ban_users and not ban_items:
            return frame.reset_index(drop=True)
        dropped = frame["user_id"].isin(ban_users) | frame["item_id"].isin(ban_items)
        user_num -= Counter(frame.loc[dropped, "user_id"].values)
        item_num -= Counter(frame.loc[dropped, "item_id"].values)
        # Counter subtraction drops zero counts, so a fully removed id is no longer banned next round.
        frame = frame.loc[~dropped]


def calcu_split_counts(total: int, ratios: tuple[float, ...] = RATIOS) -> list[int]:
    """Rows per part for one user, a copy of RecBole 1.2.1 ``Dataset._calcu_split_ids`` (counts, not offsets)."""
    tot_ratio = sum(ratios)
    norm = [r / tot_ratio for r in ratios]
    cnt = [int(norm[i] * total) for i in range(len(norm))]
    cnt[0] = total - sum(cnt[1:])
    for i in range(1, len(norm)):
        if cnt[0] <= 1:
            break
        if 0 < norm[-i] * total < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def split_per_user(frame: pd.DataFrame, seed: int) -> dict[str, pd.DataFrame]:
    """Random order (one global permutation), grouped by user, each user cut 8:1:1."""
    shuffled = frame.iloc[np.random.default_rng(seed).permutation(len(frame))].reset_index(drop=True)
    position = shuffled.groupby("user_id", sort=False).cumcount().to_numpy()
    sizes = shuffled.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
    counts = {n: calcu_split_counts(n) for n in np.unique(sizes)}
    train_end = np.array([counts[n][0] for n in sizes])
    valid_end = train_end + np.array([counts[n][1] for n in sizes])
    masks = {
        "train": position < train_end,
        "valid": (position >= train_end) & (position < valid_end),
        "test": position >= valid_end,
    }
    return {name: shuffled.loc[mask].reset_index(drop=True) for name, mask in masks.items()}


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="folder with ml-100k.inter")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--min-rating", type=float, default=3.0, help="keep rows with rating >= this")
    parser.add_argument("--core", type=int, default=10, help="k of the iterative user/item k-core filter")
    args = parser.parse_args()

    raw = read_inter(args.data_dir / "ml-100k.inter")
    positives = raw.loc[raw["rating"] >= args.min_rating].reset_index(drop=True)
    if positives.duplicated(["user_id", "item_id"]).any():
        raise ValueError("duplicate user-item pairs; the protocol assumes none")
    cored = k_core(positives, args.core)
    parts = split_per_user(cored, args.seed)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, part in parts.items():
        part.astype(SPLIT_COLUMNS).to_parquet(args.out_dir / f"{name}.parquet", index=False)
    summary = {
        "source": str(args.data_dir / "ml-100k.inter"),
        "seed": args.seed,
        "min_rating": args.min_rating,
        "core": args.core,
        "rows_raw": len(raw),
        "rows_rating_filtered": len(positives),
        "rows_cored": len(cored),
        "users": int(cored["user_id"].nunique()),
        "items": int(cored["item_id"].nunique()),
        "rows": {name: len(part) for name, part in parts.items()},
    }
    (args.out_dir / "split_info.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
