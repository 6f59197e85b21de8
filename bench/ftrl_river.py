"""FTRL-Proximal logistic regression: recforge (the `ftrl` trainer over `lr`) vs River, one stream.

The stream is the synthetic world's click log (recforge.data.synthetic, 1M impressions by default)
joined with its user and item tables: user_id, item_id, position, gender, city_tier, category_id,
brand_id (id features with `hash_buckets`: 2^bits for user and item, 2^10 for the rest), age and
price (numeric buckets), plus the lr bias: 10 coordinates per row. recforge transforms each Arrow
batch with its FeatureSet (timed) and learns with the exact per-sample numba kernel and with
vectorized mini-batches; River (bench/.venv-river, `bash bench/peers/setup_river.sh`) learns from the
same coordinates one sample at a time on a prefix of the stream (its dict building is not timed).
Reports samples/s, recforge's speed ratio, and progressive-validation AUC / logloss (every row
predicted before it is learned) on the prefix both saw and, for recforge, on the whole stream.

    python bench/ftrl_river.py --rows 1000000            # River on all rows too; --river-rows N for a prefix
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from recforge.config import PipelineConfig, build_config
from recforge.config.schema import SyntheticConfig
from recforge.data.synthetic import generate_synthetic
from recforge.features import FeatureSet
from recforge.models import build_model
from recforge.train.ftrl_lr import FtrlTrainer
from recforge.train.metrics import auc, logloss

BENCH = Path(__file__).resolve().parent
RIVER_PY = BENCH / ".venv-river" / "bin" / "python"
HYPER = {"alpha": 0.05, "beta": 1.0, "l1": 1.0, "l2": 1.0}


def click_stream(rows: int, seed: int) -> pa.Table:
    world = generate_synthetic(SyntheticConfig(n_impressions=rows, seed=seed))
    b, users, items = world.behavior, world.users, world.items
    u = b["user_id"].to_numpy() - 1
    i = b["item_id"].to_numpy() - 1
    cols = {"user_id": b["user_id"], "item_id": b["item_id"], "position": b["position"], "click": b["click"]}
    cols["true_ctr"] = b["true_ctr"]
    for name in ("age", "gender", "city_tier"):
        cols[name] = users[name].take(pa.array(u))
    for name in ("category_id", "brand_id", "price"):
        cols[name] = items[name].take(pa.array(i))
    return pa.table(cols)


def ftrl_config(table: pa.Table, bits: int, mode: str, alpha: float) -> PipelineConfig:
    """lr over the stream's hashed ids and bucketed numbers, fitted by the ftrl trainer."""
    wide = {"user_id": 2**bits, "item_id": 2**bits}
    ids = ["user_id", "item_id", "position", "gender", "city_tier", "category_id", "brand_id"]
    price = np.quantile(table["price"].to_numpy(), np.linspace(0, 1, 21)[1:-1]).tolist()
    features = [{"name": n, "kind": "id", "hash_buckets": wide.get(n, 2**10)} for n in ids] + [
        {"name": "age", "kind": "numeric", "boundaries": [25, 35, 45, 55]},
        {"name": "price", "kind": "numeric", "boundaries": price},
    ]
    return build_config(
        {
            "data": {"label": "click"},
            "features": features,
            "model": {"name": "lr"},
            "train": {"trainer": "ftrl", "ftrl": {**HYPER, "alpha": alpha, "mode": mode}},
        }
    )


def ftrl_trainer(cfg: PipelineConfig, table: pa.Table) -> tuple[FeatureSet, FtrlTrainer]:
    features = FeatureSet.from_config(cfg).fit([table.slice(0, 1_000)])  # hashed and given boundaries: no state
    return features, FtrlTrainer(build_model(features.schema(), cfg.model), cfg, BENCH / "work")


def run_recforge(table: pa.Table, bits: int, mode: str, batch: int, alpha: float) -> dict:
    cfg = ftrl_config(table, bits, mode, alpha)
    features, trainer = ftrl_trainer(cfg, table)
    trainer.learn(features.transform(table.slice(0, 1_000)))  # compile the numba kernel outside the clock
    features, trainer = ftrl_trainer(cfg, table)
    start = time.perf_counter()
    preds = np.concatenate([trainer.learn(features.transform(rb)) for rb in table.to_batches(max_chunksize=batch)])
    seconds = time.perf_counter() - start
    return {
        "mode": mode,
        "alpha": alpha,
        "batch": batch,
        "seconds": seconds,
        "preds": preds,
        "samples_per_s": table.num_rows / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--river-rows", type=int, default=None, help="River's prefix (default: all rows)")
    parser.add_argument("--bits", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8_192, help="rows per learn_many call")
    parser.add_argument("--mini-batch", type=int, default=1_024, help="rows per update in mode='batch'")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    table = click_stream(args.rows, args.seed)
    y = table["click"].to_numpy().astype(np.float64)
    features, trainer = ftrl_trainer(ftrl_config(table, args.bits, "exact", HYPER["alpha"]), table)
    idx, _ = trainer.coords.encode(features.transform(table))  # the coordinates River learns from too
    work = BENCH / "work"
    work.mkdir(exist_ok=True)
    np.savez(work / "ftrl_stream.npz", idx=idx, y=y)

    results = [
        run_recforge(table, args.bits, "exact", args.batch, HYPER["alpha"]),
        run_recforge(table, args.bits, "batch", args.mini_batch, HYPER["alpha"]),
        run_recforge(table, args.bits, "batch", args.mini_batch, 0.3),
    ]
    river_preds = work / "ftrl_river_preds.npy"
    cmd = [
        str(RIVER_PY),
        str(BENCH / "peers" / "river_ftrl.py"),
        str(work / "ftrl_stream.npz"),
        "--rows",
        str(args.river_rows or args.rows),
        "--out",
        str(river_preds),
    ]
    cmd += [a for k, v in HYPER.items() for a in (f"--{k}", str(v))]
    river = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    rp = np.load(river_preds)
    k = river["rows"]

    print(
        f"stream: synthetic clicks, {args.rows:,} rows, CTR {y.mean():.4f}, {idx.shape[1]} coordinates a row, "
        f"user and item ids in 2^{args.bits} buckets each; FTRL {HYPER}; oracle AUC "
        f"{auc(y, table['true_ctr'].to_numpy()):.4f}"
    )
    print(f"| learner | rows | samples/s | vs River | prog. AUC first {k:,} | logloss first {k:,} | prog. AUC all |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| River {river['river']} LogisticRegression(FTRLProximal), per sample | {k:,} | "
        f"{river['samples_per_s']:,.0f} | 1.0x | {auc(y[:k], rp):.4f} | {logloss(y[:k], rp):.4f} | - |"
    )
    for r in results:
        name = (
            "exact, per sample (numba)"
            if r["mode"] == "exact"
            else f"mini-batch {r['batch']:,} (numpy), alpha {r['alpha']}"
        )
        p = r["preds"]
        print(
            f"| recforge {name} | {args.rows:,} | {r['samples_per_s']:,.0f} | "
            f"{r['samples_per_s'] / river['samples_per_s']:.0f}x | {auc(y[:k], p[:k]):.4f} | "
            f"{logloss(y[:k], p[:k]):.4f} | {auc(y, p):.4f} |"
        )
    exact = results[0]["preds"][:k]
    print(f"max |p_recforge_exact - p_river| over the first {k:,} rows: {np.abs(exact - rp).max():.2e}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")


if __name__ == "__main__":
    main()
