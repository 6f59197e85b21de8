"""DeepFM on MovieLens (RecBole context protocol): recforge vs RecBole vs DeepCTR-Torch, one split.

recforge builds the split once (drop the middle ratings, label rating >= 4, global random 8:1:1) and every
framework trains on exactly those files. `--dataset` picks ml-100k (user features) or ml-latest-small (no user
features; half stars, so 2.5 < rating < 4 is dropped). `--peer-settings` picks the peers' hyper-parameters:
`flags` (the command-line values, also given to recforge unless --recforge-defaults), `recbole` (RecBole's
DeepFM defaults: 300 epochs with its early stop, stopping_step 10) or `recforge` (recforge's tuned defaults
from examples/movielens_deepfm.yaml, with RecBole's early stop). Each keeps its best-valid-AUC epoch and
reports test AUC and logloss, training samples/s (training loop only) and peak RSS. Runs are interleaved
over rounds (the machine is shared) and the median is reported with recforge's ratios.

    bash bench/peers/setup.sh                       # peer venvs, once
    python bench/deepfm_ml100k.py --data ../shared/datasets/ml-100k --rounds 3
    python bench/deepfm_ml100k.py --dataset ml-latest-small --recforge-defaults --peer-settings recbole \
        --peers recforge,recbole --precision fp32
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
EXAMPLE = REPO / "examples" / "movielens_deepfm.yaml"
PEERS = {
    "recbole": (BENCH / ".venv-recbole" / "bin" / "python", BENCH / "peers" / "recbole_deepfm.py"),
    "deepctr": (BENCH / ".venv-deepctr" / "bin" / "python", BENCH / "peers" / "deepctr_deepfm.py"),
}
CONTRACT = ["user_id", "item_id", "age", "gender", "occupation", "release_year", "genre", "label"]


def latest_small_data(path: Path, example: dict[str, Any]) -> dict[str, Any]:
    """GroupLens ml-latest-small (ratings.csv, movies.csv) as a `tables` source with the example's split."""
    derive = {
        "release_year": "regexp_extract(title, '\\((\\d{4})\\)\\s*$', 1)",
        "genre": "string_split(replace(genres, ' ', '_'), '|')",  # '(no genres listed)' -> one token
    }
    return {
        **example,
        "source": "tables",
        "path": None,
        "tables": {  # headed files, columns renamed to the contract's names
            "behavior": {
                "path": str(path / "ratings.csv"),
                "header": True,
                "columns": ["user_id", "item_id", "rating", "timestamp"],
            },
            "items": {
                "path": str(path / "movies.csv"),
                "header": True,
                "columns": ["item_id", "title", "genres"],
                "derive": derive,
            },
        },
        "label_rule": {"positive": "rating >= 4", "drop": "rating > 2.5 AND rating < 4"},
    }


# dataset -> its recforge `data:` block from the raw folder and the example's own block
DATASETS: dict[str, Callable[[Path, dict[str, Any]], dict[str, Any]]] = {
    "ml-100k": lambda path, example: {**example, "path": str(path)},
    "ml-latest-small": latest_small_data,
}


def make_split(dataset: str, data: Path, work: Path) -> Path:
    """recforge's own sample building, written in the peers' split contract (genre space-joined; side columns
    the data set lacks left out)."""
    from recforge.config.loader import build_config, load_tree
    from recforge.data import build_samples

    split = work / "split"
    if (split / "test.parquet").exists():
        return split
    tree = load_tree(EXAMPLE)
    tree["data"] = DATASETS[dataset](data, tree["data"])
    samples = build_samples(build_config(tree, file=str(EXAMPLE)).data, work / "samples")
    split.mkdir(parents=True, exist_ok=True)
    for name in ("train", "valid", "test"):
        table = pq.read_table(getattr(samples, name))
        genre = pc.binary_join(table["genre"], " ")
        table = table.set_column(table.column_names.index("genre"), "genre", genre)
        columns = {c: pc.cast(table[c], pa.string()) for c in CONTRACT[:-1] if c in table.column_names}
        columns["label"] = table["label"]
        pq.write_table(pa.table(columns), split / f"{name}.parquet")
    return split


def split_features(split: Path) -> list[dict[str, Any]]:
    """The example's features that the split has, genre read space-joined (recforge trains on the peers' files)."""
    from recforge.config.loader import load_tree

    have = set(pq.read_schema(split / "train.parquet").names)
    features = [f for f in load_tree(EXAMPLE)["features"] if f["name"] in have]
    return [{**f, "sep": " "} if f["name"] == "genre" else f for f in features]


def recforge_child(args: argparse.Namespace) -> dict[str, object]:
    """Train recforge's DeepFM on the split in this process and report like the peer runners."""
    import torch

    from recforge import pipeline
    from recforge.config.loader import build_config, load_tree

    torch.set_num_threads(args.threads)
    split = args.recforge_child
    tree = load_tree(EXAMPLE)
    tree["features"] = split_features(split)
    cfg = build_config(
        tree,
        [
            "data.source=samples",
            "data.path=null",
            f"data.train={split / 'train.parquet'}",
            f"data.valid={split / 'valid.parquet'}",
            f"data.test={split / 'test.parquet'}",
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
        "valid_auc": result.metrics["valid"]["auc"],
        "train_samples_per_s": result.train.samples_per_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "best_epoch": result.metrics["train"]["best_step"] // max(result.train.steps // result.train.epochs, 1),
        "epochs": result.train.epochs,
    }


def same_settings(args: argparse.Namespace) -> list[str]:
    """The peers' hyper-parameters as recforge overrides (left out with --recforge-defaults)."""
    return [
        f"embedding_dim={args.dim}",
        f"model.deep.hidden=[{args.mlp}]",
        f"model.deep.dropout={args.dropout}",
        f"train.optimizer.lr={args.lr}",
        f"train.optimizer.weight_decay={args.weight_decay}",
        "train.optimizer.embedding_l2=0",  # the peers have no such term
        f"train.batch_size={args.batch_size}",
        f"train.epochs={args.epochs}",
        # RecBole's rule (stop once more than N epochs in a row did not beat the best) is patience N + 1
        f"train.early_stop={{metric: auc, patience: {args.recbole_stopping_step + 1}}}"
        if args.recbole_stopping_step
        else "train.early_stop=null",
    ]


# RecBole 1.2.1's DeepFM defaults (recbole/properties/model/DeepFM.yaml, overall.yaml), its early stop included
RECBOLE_DEFAULTS: dict[str, Any] = {
    "dim": 10,
    "mlp": "128,128,128",
    "dropout": 0.2,
    "lr": 0.001,
    "batch_size": 2048,
    "weight_decay": 0.0,
    "epochs": 300,
    "recbole_stopping_step": 10,
}


def recforge_tuned() -> dict[str, Any]:
    """recforge's tuned defaults (the example's values) as peer settings, with RecBole's own early stop."""
    from recforge.config.loader import build_config, load_tree

    cfg = build_config(load_tree(EXAMPLE), ["data.path=."], file=str(EXAMPLE))
    deep = (cfg.model.model_extra or {})["deep"]
    return {
        "dim": cfg.embedding_dim,
        "mlp": ",".join(str(h) for h in deep["hidden"]),
        "dropout": deep["dropout"],
        "lr": cfg.train.optimizer.lr,
        "batch_size": cfg.train.batch_size,
        "weight_decay": cfg.train.optimizer.weight_decay,
        "epochs": 300,
        "recbole_stopping_step": 10,
    }


# --peer-settings: where the peers' hyper-parameters come from ("flags": the command line as given)
PEER_SETTINGS: dict[str, Callable[[], dict[str, Any]]] = {
    "flags": dict,
    "recbole": lambda: RECBOLE_DEFAULTS,
    "recforge": recforge_tuned,
}


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
    own = ["--recbole-stopping-step", str(args.recbole_stopping_step), "--weight-decay", str(args.weight_decay)]
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
            *own,
        ]
    else:
        python, script = PEERS[name]
        if not python.exists():
            raise SystemExit(f"{python} is missing: run `bash bench/peers/setup.sh` first")
        own = [flag.replace("--recbole-", "--") for flag in own] if name == "recbole" else []
        cmd = [str(python), str(script), str(split), *flags, *own, "--out", str(out)]
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
    parser.add_argument("--dataset", default="ml-100k", choices=sorted(DATASETS))
    parser.add_argument("--data", type=Path, help="the data set's folder (default ../shared/datasets/DATASET)")
    parser.add_argument("--work", type=Path, help="default bench/work/deepfm_DATASET")
    parser.add_argument("--peer-settings", default="flags", choices=sorted(PEER_SETTINGS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peers", default="recforge,recforge_fp32,recbole,deepctr")
    parser.add_argument("--seed", type=int, default=2020, help="round r trains with seed + r (split fixed)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--mlp", default="128,128,128")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--weight-decay", type=float, default=0.0, help="RecBole's weight_decay")
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
    args.data = args.data or REPO.parent / "shared" / "datasets" / args.dataset
    args.work = args.work or BENCH / "work" / f"deepfm_{args.dataset}"
    args.work.mkdir(parents=True, exist_ok=True)
    if args.recforge_child:
        print(json.dumps(recforge_child(args)))
        return
    vars(args).update(PEER_SETTINGS[args.peer_settings]())
    split = make_split(args.dataset, args.data, args.work)
    names = args.peers.split(",")
    results: dict[str, list[dict[str, object]]] = {n: [] for n in names}
    for round_ in range(args.rounds):
        for name in names:
            results[name].append(run(name, split, args, args.seed + round_))
            r = results[name][-1]
            print(
                f"round {round_ + 1} {name:9s} auc={r['auc']:.4f} logloss={r['logloss']:.4f} "
                f"samples/s={r['train_samples_per_s']:,.0f} peak={r['peak_rss_mb']:.0f}MB "
                f"best_epoch={r['best_epoch']}/{r['epochs']} wall={r['wall_s']:.0f}s",
                flush=True,
            )
    (args.work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    report(results, args)


def report(results: dict[str, list[dict[str, object]]], args: argparse.Namespace) -> None:
    """Medians per framework, and recforge's speed ratio and AUC difference taken round by round."""

    def med(name: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in results[name])  # type: ignore[arg-type]

    base = next((n for n in results if n.startswith("recforge")), "")

    def paired(name: str, key: str, op: str) -> float:
        if not base:
            return float("nan")
        pairs = zip(results[base], results[name], strict=True)
        values = [
            float(a[key]) / float(b[key]) if op == "ratio" else float(a[key]) - float(b[key])  # type: ignore[arg-type]
            for a, b in pairs
        ]
        return statistics.median(values)

    overrides = f", recforge overrides {' '.join(args.recforge_set)}" if args.recforge_set else ""
    if args.recforge_defaults:
        overrides += ", recforge at its defaults (examples/movielens_deepfm.yaml)"
    stop = f"RecBole stopping_step {args.recbole_stopping_step}" if args.recbole_stopping_step else "no early stop"
    print(
        f"\nDeepFM, {args.dataset} context protocol, peer settings {args.peer_settings}: dim {args.dim}, "
        f"MLP [{args.mlp}], dropout {args.dropout}, lr {args.lr}, weight decay {args.weight_decay}, "
        f"batch {args.batch_size}, up to {args.epochs} epochs ({stop}; best valid epoch), {args.threads} threads, "
        f"seeds {args.seed}..{args.seed + args.rounds - 1} (one per round), recforge precision {args.precision}"
        f"{overrides}; medians over rounds; ratios and differences are {base} against each\n"
    )
    print(
        "| framework | test AUC | test logloss | train samples/s | peak RSS MB "
        "| recforge / it, samples/s | recforge - it, AUC | best epoch / trained |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in results:
        ratio, diff = paired(name, "train_samples_per_s", "ratio"), paired(name, "auc", "diff")
        print(
            f"| {name} | {med(name, 'auc'):.4f} | {med(name, 'logloss'):.4f} "
            f"| {med(name, 'train_samples_per_s'):,.0f} | "
            f"{med(name, 'peak_rss_mb'):.0f} | {ratio:.2f}x | {diff:+.4f} | "
            f"{med(name, 'best_epoch'):.0f} / {med(name, 'epochs'):.0f} |"
        )


if __name__ == "__main__":
    main()
