"""FTRL-Proximal logistic regression: recforge (the `ftrl` trainer over `lr`) vs River, the same rows, several seeds.

Each seed's stream is the synthetic world's click log (recforge.data.synthetic, 1M impressions by default)
joined with its user and item tables: user_id, item_id, position, gender, city_tier, category_id, brand_id
(id features with `hash_buckets`: 2^bits for user and item, 2^10 for the rest), age and price (numeric
buckets), plus the lr bias: 10 coordinates per row. Learners, one after the other on the same rows in order:

- River 0.26.1 (bench/.venv-river, `bash bench/peers/setup_river.sh`), one sample at a time, on the coordinates
  recforge computed (building its feature dicts is not timed);
- recforge from raw Arrow batches (`FtrlTrainer.learn_table`: ids hashed and numbers bucketized inside the one
  FTRL kernel), the streaming job's path;
- recforge from transformed Batches (`FeatureSet.transform` + `FtrlTrainer.learn`), the path before the fused
  kernel; its weights must equal the raw path's (max |dw| printed).

recforge's clock includes reading the Arrow batches (8,192 rows per call) and the labels. Rates are given per
wall second and per CPU second of the learning process (on a shared machine the wall clock also counts the
time other processes held the cores; a ratio of CPU rates does not). AUC / logloss are progressive (each
row predicted before it is learned). Prints each seed and the medians over seeds.

    python bench/ftrl_river.py --rows 1000000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

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
WORK = BENCH / "work"
RIVER_PY = BENCH / ".venv-river" / "bin" / "python"
HYPER = {"alpha": 0.05, "beta": 1.0, "l1": 1.0, "l2": 1.0}
RIVER, RAW, TRANSFORM = "River 0.26.1, per sample", "recforge raw rows (fused kernel)", "recforge transform + learn"


def click_stream(rows: int, seed: int) -> pa.Table:
    world = generate_synthetic(SyntheticConfig(n_impressions=rows, seed=seed))
    b, users, items = world.behavior, world.users, world.items
    u = pa.array(b["user_id"].to_numpy() - 1)
    i = pa.array(b["item_id"].to_numpy() - 1)
    cols = {name: b[name] for name in ("user_id", "item_id", "position", "click", "true_ctr")}
    cols |= {name: users[name].take(u) for name in ("age", "gender", "city_tier")}
    cols |= {name: items[name].take(i) for name in ("category_id", "brand_id", "price")}
    return pa.table(cols)


def ftrl_config(table: pa.Table, bits: int) -> PipelineConfig:
    """lr over the stream's hashed ids and bucketed numbers, fitted by the exact ftrl trainer."""
    wide = {"user_id": 2**bits, "item_id": 2**bits}
    ids = ["user_id", "item_id", "position", "gender", "city_tier", "category_id", "brand_id"]
    price = np.quantile(table["price"].to_numpy(), np.linspace(0, 1, 21)[1:-1]).tolist()
    features = [{"name": n, "kind": "id", "hash_buckets": wide.get(n, 2**10)} for n in ids] + [
        {"name": "age", "kind": "numeric", "boundaries": [25, 35, 45, 55]},
        {"name": "price", "kind": "numeric", "boundaries": price},
    ]
    train = {"trainer": "ftrl", "ftrl": {**HYPER, "mode": "exact"}}
    return build_config({"data": {"label": "click"}, "features": features, "model": {"name": "lr"}, "train": train})


def ftrl_trainer(cfg: PipelineConfig, table: pa.Table) -> tuple[FeatureSet, FtrlTrainer]:
    features = FeatureSet.from_config(cfg).fit([table.slice(0, 1_000)])  # hashed and given boundaries: no state
    return features, FtrlTrainer(build_model(features.schema(), cfg.model), cfg, WORK)


def raw_step(trainer: FtrlTrainer, features: FeatureSet) -> Callable[[pa.RecordBatch], np.ndarray]:
    return lambda rb: trainer.learn_table(rb, features)[1]


def transform_step(trainer: FtrlTrainer, features: FeatureSet) -> Callable[[pa.RecordBatch], np.ndarray]:
    return lambda rb: trainer.learn(features.transform(rb))


def run_recforge(table: pa.Table, cfg: PipelineConfig, batch: int, step: Callable) -> tuple[dict, FtrlTrainer]:
    features, trainer = ftrl_trainer(cfg, table)
    step(trainer, features)(table.slice(0, 1_000).to_batches()[0])  # compile / load the kernel outside the clock
    features, trainer = ftrl_trainer(cfg, table)
    learn = step(trainer, features)
    batches = table.to_batches(max_chunksize=batch)
    start, cpu = time.perf_counter(), time.process_time()
    preds = np.concatenate([learn(rb) for rb in batches])
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    rates = {"samples_per_s": table.num_rows / seconds, "samples_per_cpu_s": table.num_rows / cpu_seconds}
    return {**rates, "preds": preds}, trainer


def run_river(idx: np.ndarray, y: np.ndarray) -> dict:
    """River on every row, in a subprocess of its own venv; its progressive predictions come back in a file."""
    WORK.mkdir(exist_ok=True)
    np.savez(WORK / "ftrl_stream.npz", idx=idx, y=y)
    out = WORK / "ftrl_river_preds.npy"
    cmd = [str(RIVER_PY), str(BENCH / "peers" / "river_ftrl.py"), str(WORK / "ftrl_stream.npz")]
    cmd += ["--rows", str(len(y)), "--out", str(out)]
    cmd += [a for k, v in HYPER.items() for a in (f"--{k}", str(v))]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    river = json.loads(done.stdout.strip().splitlines()[-1])
    rates = {k: river[k] for k in ("samples_per_s", "samples_per_cpu_s")}
    return {**rates, "preds": np.load(out), "version": river["river"]}


def one_seed(rows: int, bits: int, batch: int, seed: int) -> dict[str, dict]:
    table = click_stream(rows, seed)
    y = table["click"].to_numpy().astype(np.float64)
    cfg = ftrl_config(table, bits)
    features, trainer = ftrl_trainer(cfg, table)
    idx, _ = trainer.coords.encode(features.transform(table))  # the coordinates River learns from
    raw, raw_trainer = run_recforge(table, cfg, batch, raw_step)
    transformed, transform_trainer = run_recforge(table, cfg, batch, transform_step)
    results = {RIVER: run_river(idx, y), RAW: raw, TRANSFORM: transformed}
    dw = np.abs(raw_trainer.ftrl.weights() - transform_trainer.ftrl.weights()).max()
    dp = np.abs(raw["preds"] - results[RIVER]["preds"]).max()
    print(
        f"seed {seed}: {rows:,} rows, CTR {y.mean():.4f}, oracle AUC {auc(y, table['true_ctr'].to_numpy()):.4f}; "
        f"max |dw| raw vs transform {dw:.1e}; max |dp| raw vs River {dp:.1e}",
        flush=True,
    )
    for r in results.values():
        r["auc"], r["logloss"] = auc(y, r["preds"]), logloss(y, r["preds"])
        r["vs_river"] = r["samples_per_s"] / results[RIVER]["samples_per_s"]
        r["cpu_vs_river"] = r["samples_per_cpu_s"] / results[RIVER]["samples_per_cpu_s"]
    for name, r in results.items():
        print(
            f"  {name}: {r['samples_per_s']:,.0f}/s ({r['vs_river']:.1f}x), {r['samples_per_cpu_s']:,.0f}/CPU-s "
            f"({r['cpu_vs_river']:.1f}x), AUC {r['auc']:.4f}",
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bits", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8_192, help="rows per learn call")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if not RIVER_PY.exists():
        sys.exit(f"error: {RIVER_PY} is missing\n  fix: bash bench/peers/setup_river.sh")
    runs = [one_seed(args.rows, args.bits, args.batch, seed) for seed in args.seeds]
    print(f"\nFTRL {HYPER}, {args.rows:,} rows per seed, seeds {args.seeds}: medians over seeds")
    print("| learner | samples/s (wall) | vs River | samples/CPU-s | vs River | prog. AUC | prog. logloss |")
    print("|---|---|---|---|---|---|---|")
    keys = ("samples_per_s", "vs_river", "samples_per_cpu_s", "cpu_vs_river", "auc", "logloss")
    for name in runs[0]:
        med = {k: median(run[name][k] for run in runs) for k in keys}
        print(
            f"| {name} | {med['samples_per_s']:,.0f} | {med['vs_river']:.1f}x | {med['samples_per_cpu_s']:,.0f} | "
            f"{med['cpu_vs_river']:.1f}x | {med['auc']:.4f} | {med['logloss']:.4f} |"
        )
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")


if __name__ == "__main__":
    main()
