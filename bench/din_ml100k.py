"""DIN on MovieLens-100k with the rating history as behavior sequence: recforge DIN and BST, recforge
DeepFM (history mean-pooled, and without it) and RecBole's DIN, one split, side by side.

recforge builds the split once (RecBole context protocol: drop rating 3, label rating >= 4, global
random 8:1:1) and adds each row's history: the items the user rated strictly before the row's
timestamp, newest last, at most --max-len. Every framework trains on exactly those files with the
same embedding size, MLP, dropout, learning rate, batch size, epochs and torch threads, keeps its
best-valid-AUC epoch and reports test AUC/logloss and training samples/s. Runs are interleaved over
rounds (seed + round) and medians are reported, with DIN's AUC differences taken round by round.

    bash bench/peers/setup.sh                       # RecBole venv, once
    python bench/din_ml100k.py --data ../shared/datasets/ml-100k --rounds 3
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RECBOLE = (BENCH / ".venv-recbole" / "bin" / "python", BENCH / "peers" / "recbole_din.py")
CONTRACT = ["user_id", "item_id", "age", "gender", "occupation", "release_year", "genre", "label"]
# recforge runs: (example config, extra --set overrides)
RECFORGE = {
    "recforge_din": ("movielens_din.yaml", []),
    "recforge_din_fm": ("movielens_din.yaml", ["model.fm=true"]),
    "recforge_bst": ("movielens_bst.yaml", []),
    "recforge_deepfm_hist": ("movielens_din.yaml", ["model={name: deepfm, deep: {}}"]),  # history mean-pooled
    "recforge_deepfm": ("movielens_deepfm.yaml", []),
}


def make_split(data: Path, work: Path, max_len: int) -> Path:
    """recforge's own samples with the history, in the peers' split contract (lists space-joined)."""
    from recforge.config import load_config
    from recforge.data import build_samples

    split = work / f"split_{max_len}"
    if (split / "test.parquet").exists():
        return split
    cfg = load_config(
        REPO / "examples" / "movielens_din.yaml", [f"data.path={data}", f"data.history.max_len={max_len}"]
    )
    samples = build_samples(cfg.data, work / "samples")
    split.mkdir(parents=True, exist_ok=True)
    for name in ("train", "valid", "test"):
        table = pq.read_table(getattr(samples, name))
        columns = {c: table[c] for c in CONTRACT}
        for c in ("user_id", "item_id", "release_year"):
            columns[c] = pc.cast(columns[c], pa.string())
        columns["genre"] = pc.binary_join(table["genre"], " ")
        columns["history"] = pc.binary_join(table["history"].cast(pa.list_(pa.string())), " ")
        pq.write_table(pa.table(columns), split / f"{name}.parquet")
    return split


def recforge_child(args: argparse.Namespace) -> dict[str, object]:
    """Train one recforge model on the split in this process and report like the peer runners."""
    import torch

    from recforge import pipeline
    from recforge.config import load_config

    torch.set_num_threads(args.threads)
    split = args.recforge_child
    example, extra = RECFORGE[args.name]
    overrides = [
        *extra,
        "data.source=samples",
        f"data.train={split / 'train.parquet'}",
        f"data.valid={split / 'valid.parquet'}",
        f"data.test={split / 'test.parquet'}",
        "data.history=null",
        "features[5].sep=' '",
        f"embedding_dim={args.dim}",
        f"model.deep.hidden=[{args.mlp}]",
        f"model.deep.dropout={args.dropout}",
        f"train.optimizer.lr={args.lr}",
        f"train.batch_size={args.batch_size}",
        f"train.epochs={args.epochs}",
        "train.early_stop=null",
        "train.progress=false",
        f"train.threads={args.threads}",
        f"train.seed={args.seed}",
        "eval.metrics=[auc, logloss]",
        *args.recforge_set,
    ]
    if example != "movielens_deepfm.yaml":
        overrides += ["features[7].sep=' '", f"features[7].max_len={args.max_len}"]
    cfg = load_config(REPO / "examples" / example, overrides)
    run_dir = args.work / f"run_{args.name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    result = pipeline.train(cfg, run_dir)
    return {
        "peer": args.name,
        "auc": result.metrics["test"]["auc"],
        "logloss": result.metrics["test"]["logloss"],
        "train_samples_per_s": result.train.samples_per_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run(name: str, split: Path, args: argparse.Namespace, seed: int) -> dict[str, object]:
    flags = ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--dim", str(args.dim)]
    flags += ["--mlp", args.mlp, "--dropout", str(args.dropout), "--lr", str(args.lr)]
    flags += ["--threads", str(args.threads), "--seed", str(seed), "--max-len", str(args.max_len)]
    out = args.work / f"{name}.json"
    if name in RECFORGE:
        sets = [f"--recforge-set={o}" for o in args.recforge_set]
        cmd = [sys.executable, __file__, "--recforge-child", str(split), "--name", name, "--work", str(args.work)]
        cmd += [*sets, *flags]
    else:
        python, script = RECBOLE
        if not python.exists():
            raise SystemExit(f"{python} is missing: run `bash bench/peers/setup.sh` first")
        cmd = [str(python), str(script), str(split), *flags, "--out", str(out)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1]) if name in RECFORGE else json.loads(out.read_text())
    result["wall_s"] = time.perf_counter() - started
    return result


def report(results: dict[str, list[dict[str, object]]], args: argparse.Namespace) -> None:
    """Medians per run, and recforge DIN's AUC difference to each, taken round by round."""

    def values(name: str, key: str) -> list[float]:
        return [float(r[key]) for r in results[name]]  # type: ignore[arg-type]

    base = "recforge_din" if "recforge_din" in results else next(iter(results))
    print(
        f"\nml-100k context protocol + history (max_len {args.max_len}), dim {args.dim}, MLP [{args.mlp}], "
        f"dropout {args.dropout}, lr {args.lr}, batch {args.batch_size}, {args.epochs} epochs (best valid epoch), "
        f"{args.threads} threads, seeds {args.seed}..{args.seed + args.rounds - 1}; medians over rounds\n"
    )
    print(f"| run | test AUC | test logloss | train samples/s | {base} - it, AUC (per round) | median |")
    print("|---|---|---|---|---|---|")
    for name in results:
        diffs = [a - b for a, b in zip(values(base, "auc"), values(name, "auc"), strict=True)]
        print(
            f"| {name} | {statistics.median(values(name, 'auc')):.4f} "
            f"| {statistics.median(values(name, 'logloss')):.4f} "
            f"| {statistics.median(values(name, 'train_samples_per_s')):,.0f} "
            f"| {' '.join(f'{d:+.4f}' for d in diffs)} | {statistics.median(diffs):+.4f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ml-100k")
    parser.add_argument("--work", type=Path, default=BENCH / "work" / "din_ml100k")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peers", default="recforge_din,recforge_deepfm_hist,recforge_deepfm,recbole_din")
    parser.add_argument("--seed", type=int, default=2020, help="round r trains with seed + r (split fixed)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--mlp", default="128,128,128")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--recforge-set", action="append", default=[], help="extra recforge --set override")
    parser.add_argument("--recforge-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.recforge_child:
        print(json.dumps(recforge_child(args)))
        return
    split = make_split(args.data, args.work, args.max_len)
    names = args.peers.split(",")
    results: dict[str, list[dict[str, object]]] = {n: [] for n in names}
    for round_ in range(args.rounds):
        for name in names:
            results[name].append(run(name, split, args, args.seed + round_))
            r = results[name][-1]
            print(
                f"round {round_ + 1} {name:22s} auc={r['auc']:.4f} logloss={r['logloss']:.4f} "
                f"samples/s={r['train_samples_per_s']:,.0f}",
                flush=True,
            )
    report(results, args)


if __name__ == "__main__":
    main()
