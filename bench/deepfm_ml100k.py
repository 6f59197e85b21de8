"""DeepFM on MovieLens-100k (RecBole context protocol): recforge vs RecBole vs DeepCTR-Torch, one split.

recforge builds the split once (drop rating 3, label rating >= 4, global random 8:1:1) and every
framework trains on exactly those files with the same embedding size, MLP, dropout, learning rate,
batch size, epochs and torch threads. Each keeps its best-valid-AUC epoch and reports test AUC and
logloss, training samples/s (training loop only) and peak RSS. Runs are interleaved over rounds
(the machine is shared) and the median is reported with recforge's ratios.

    bash bench/peers/setup.sh                       # peer venvs, once
    python bench/deepfm_ml100k.py --data ../shared/datasets/ml-100k --rounds 3
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
PEERS = {
    "recbole": (BENCH / ".venv-recbole" / "bin" / "python", BENCH / "peers" / "recbole_deepfm.py"),
    "deepctr": (BENCH / ".venv-deepctr" / "bin" / "python", BENCH / "peers" / "deepctr_deepfm.py"),
}
CONTRACT = ["user_id", "item_id", "age", "gender", "occupation", "release_year", "genre", "label"]


def make_split(data: Path, work: Path) -> Path:
    """recforge's own sample building, written in the peers' split contract (genre space-joined)."""
    from recforge.config import load_config
    from recforge.data import build_samples

    split = work / "split"
    if (split / "test.parquet").exists():
        return split
    cfg = load_config(REPO / "examples" / "movielens_deepfm.yaml", [f"data.path={data}"])
    samples = build_samples(cfg.data, work / "samples")
    split.mkdir(parents=True, exist_ok=True)
    for name in ("train", "valid", "test"):
        table = pq.read_table(getattr(samples, name))
        genre = pc.binary_join(table["genre"], " ")
        table = table.set_column(table.column_names.index("genre"), "genre", genre)
        columns = {c: table[c] for c in CONTRACT}
        columns["user_id"] = pc.cast(columns["user_id"], pa.string())
        columns["item_id"] = pc.cast(columns["item_id"], pa.string())
        columns["release_year"] = pc.cast(columns["release_year"], pa.string())
        pq.write_table(pa.table(columns), split / f"{name}.parquet")
    return split


def recforge_child(args: argparse.Namespace) -> dict[str, object]:
    """Train recforge's DeepFM on the split in this process and report like the peer runners."""
    import torch

    from recforge import pipeline
    from recforge.config import load_config

    torch.set_num_threads(args.threads)
    split = args.recforge_child
    cfg = load_config(
        REPO / "examples" / "movielens_deepfm.yaml",
        [
            "data.source=samples",
            f"data.train={split / 'train.parquet'}",
            f"data.valid={split / 'valid.parquet'}",
            f"data.test={split / 'test.parquet'}",
            "features[5].sep=' '",
            *([] if args.recforge_defaults else same_settings(args)),
            "train.progress=false",
            f"train.threads={args.threads}",
            f"train.precision={args.precision}",
            f"train.seed={args.seed}",
            "eval.metrics=[auc, logloss]",
            *args.recforge_set,
        ],
    )
    run_dir = args.work / f"recforge_run_{args.precision}"
    shutil.rmtree(run_dir, ignore_errors=True)
    result = pipeline.train(cfg, run_dir)
    return {
        "peer": "recforge",
        "auc": result.metrics["test"]["auc"],
        "logloss": result.metrics["test"]["logloss"],
        "train_samples_per_s": result.train.samples_per_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "best_epoch": result.metrics["train"]["best_step"] // max(result.train.steps // result.train.epochs, 1),
    }


def same_settings(args: argparse.Namespace) -> list[str]:
    """The peers' hyper-parameters as recforge overrides (left out with --recforge-defaults)."""
    return [
        f"embedding_dim={args.dim}",
        f"model.deep.hidden=[{args.mlp}]",
        f"model.deep.dropout={args.dropout}",
        f"train.optimizer.lr={args.lr}",
        f"train.batch_size={args.batch_size}",
        f"train.epochs={args.epochs}",
        "train.early_stop=null",
    ]


def run(name: str, split: Path, args: argparse.Namespace, seed: int) -> dict[str, object]:
    out = args.work / f"{name}.json"
    flags = [
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--dim",
        str(args.dim),
        "--mlp",
        args.mlp,
        "--dropout",
        str(args.dropout),
        "--lr",
        str(args.lr),
        "--threads",
        str(args.threads),
        "--seed",
        str(seed),
    ]
    if name.startswith("recforge"):
        precision = "fp32" if name == "recforge_fp32" else args.precision
        cmd = [
            sys.executable,
            __file__,
            "--recforge-child",
            str(split),
            "--work",
            str(args.work),
            "--precision",
            precision,
            *[f"--recforge-set={o}" for o in args.recforge_set],
            *(["--recforge-defaults"] if args.recforge_defaults else []),
            *flags,
        ]
    else:
        python, script = PEERS[name]
        if not python.exists():
            raise SystemExit(f"{python} is missing: run `bash bench/peers/setup.sh` first")
        stopping = ["--stopping-step", str(args.recbole_stopping_step)] if name == "recbole" else []
        cmd = [str(python), str(script), str(split), *flags, *stopping, "--out", str(out)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    last = proc.stdout.strip().splitlines()[-1]
    result = json.loads(last) if name.startswith("recforge") else json.loads(out.read_text())
    result["wall_s"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ml-100k")
    parser.add_argument("--work", type=Path, default=BENCH / "work" / "deepfm_ml100k")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peers", default="recforge,recforge_fp32,recbole,deepctr")
    parser.add_argument("--seed", type=int, default=2020, help="round r trains with seed + r (split fixed)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--mlp", default="128,128,128")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"], help="for `recforge`")
    parser.add_argument("--recforge-set", action="append", default=[], help="extra recforge --set override")
    parser.add_argument(
        "--recforge-defaults",
        action="store_true",
        help="recforge trains examples/movielens_deepfm.yaml as it is (its own recipe), not the peers' settings",
    )
    parser.add_argument(
        "--recbole-stopping-step", type=int, default=0, help="RecBole's early stop (its default is 10; 0: off)"
    )
    parser.add_argument("--recforge-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.recforge_child:
        print(json.dumps(recforge_child(args)))
        return
    split = make_split(args.data, args.work)
    names = args.peers.split(",")
    results: dict[str, list[dict[str, object]]] = {n: [] for n in names}
    for round_ in range(args.rounds):
        for name in names:
            results[name].append(run(name, split, args, args.seed + round_))
            r = results[name][-1]
            print(
                f"round {round_ + 1} {name:9s} auc={r['auc']:.4f} logloss={r['logloss']:.4f} "
                f"samples/s={r['train_samples_per_s']:,.0f} peak={r['peak_rss_mb']:.0f}MB",
                flush=True,
            )
    report(results, args)


def report(results: dict[str, list[dict[str, object]]], args: argparse.Namespace) -> None:
    """Medians per framework, and recforge's speed ratio and AUC difference taken round by round."""

    def med(name: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in results[name])  # type: ignore[arg-type]

    def paired(name: str, key: str, op: str) -> float:
        pairs = zip(results["recforge"], results[name], strict=True)
        values = [
            float(a[key]) / float(b[key]) if op == "ratio" else float(a[key]) - float(b[key])  # type: ignore[arg-type]
            for a, b in pairs
        ]
        return statistics.median(values)

    overrides = f", recforge overrides {' '.join(args.recforge_set)}" if args.recforge_set else ""
    if args.recforge_defaults:
        overrides += ", recforge at its defaults (examples/movielens_deepfm.yaml)"
    print(
        f"\nDeepFM, ml-100k context protocol, dim {args.dim}, MLP [{args.mlp}], dropout {args.dropout}, "
        f"lr {args.lr}, batch {args.batch_size}, {args.epochs} epochs (best valid epoch), {args.threads} threads, "
        f"seeds {args.seed}..{args.seed + args.rounds - 1} (one per round), recforge precision {args.precision}"
        f"{overrides}; medians over rounds\n"
    )
    print(
        "| framework | test AUC | test logloss | train samples/s | peak RSS MB "
        "| recforge / it, samples/s | recforge - it, AUC |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in results:
        ratio = paired(name, "train_samples_per_s", "ratio") if "recforge" in results else float("nan")
        diff = paired(name, "auc", "diff") if "recforge" in results else float("nan")
        print(
            f"| {name} | {med(name, 'auc'):.4f} | {med(name, 'logloss'):.4f} "
            f"| {med(name, 'train_samples_per_s'):,.0f} | "
            f"{med(name, 'peak_rss_mb'):.0f} | {ratio:.2f}x | {diff:+.4f} |"
        )


if __name__ == "__main__":
    main()
