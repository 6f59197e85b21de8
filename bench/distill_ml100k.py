"""Distillation on MovieLens-100k: how much of a DeepFM teacher's AUC gain over LR does a small student keep?

On one split (examples/*.yaml, RecBole context protocol) it trains, one after the other:
LR (examples/movielens_lr.yaml), the teacher (examples/movielens_deepfm.yaml, or --teacher-config,
e.g. a tuned best.yaml), the student on labels only, and the student distilled from the teacher
(`train.distill: {teacher, alpha, temperature}`). It reports test AUC, parameter counts, the share
of the teacher's gain over LR each student keeps, (student - LR) / (teacher - LR), and the
student / teacher parameter ratio. Repeated over --seeds (training seeds; the split is fixed).

    python bench/distill_ml100k.py --data ../shared/datasets/ml-100k --seeds 2020,2021,2022
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
STUDENT = ["embedding_dim=6"]  # FM, 6-dim embeddings: ~20% of the default DeepFM's parameters


def train_once(config: Path, overrides: list[str], out: Path) -> dict[str, float]:
    from recforge import pipeline
    from recforge.config import load_config

    shutil.rmtree(out, ignore_errors=True)
    metrics = pipeline.train(load_config(config, overrides), out).metrics
    return {"auc": metrics["test"]["auc"], "params": metrics["train"]["parameters"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ml-100k")
    parser.add_argument("--work", type=Path, default=BENCH / "work" / "distill_ml100k")
    parser.add_argument("--teacher-config", type=Path, default=REPO / "examples" / "movielens_deepfm.yaml")
    parser.add_argument("--student-config", type=Path, default=REPO / "examples" / "movielens_fm.yaml")
    parser.add_argument("--student-set", action="append", default=None, help="student override (repeatable)")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seeds", default="2020")
    args = parser.parse_args()
    student_set = args.student_set if args.student_set is not None else STUDENT

    rows: dict[str, list[dict[str, float]]] = {"lr": [], "teacher": [], "student": [], "student distilled": []}
    for seed in (int(s) for s in args.seeds.split(",")):
        common = [f"data.path={args.data.resolve()}", "train.progress=false", f"train.seed={seed}"]
        work = args.work / str(seed)
        rows["lr"].append(train_once(REPO / "examples" / "movielens_lr.yaml", common, work / "lr"))
        rows["teacher"].append(train_once(args.teacher_config, common, work / "teacher"))
        rows["student"].append(train_once(args.student_config, common + student_set, work / "student"))
        distill = f"train.distill={{teacher: {work / 'teacher' / 'bundle'}, alpha: {args.alpha}, "
        distill += f"temperature: {args.temperature}}}"
        rows["student distilled"].append(
            train_once(args.student_config, [*common, *student_set, distill], work / "distilled")
        )
        print(f"seed {seed}: " + "  ".join(f"{k}={v[-1]['auc']:.4f}" for k, v in rows.items()), flush=True)

    def kept(name: str, i: int) -> float:
        lr, teacher = rows["lr"][i]["auc"], rows["teacher"][i]["auc"]
        return (rows[name][i]["auc"] - lr) / (teacher - lr)

    n = len(rows["lr"])
    print(f"\nstudent: {args.student_config.name} {' '.join(student_set)}; alpha={args.alpha} T={args.temperature}")
    print("| model | test AUC (median) | parameters | params / teacher | gain over LR kept |\n|---|---|---|---|---|")
    teacher_params = rows["teacher"][0]["params"]
    for name, values in rows.items():
        auc = statistics.median(v["auc"] for v in values)
        params = values[0]["params"]
        share = "" if name in ("lr", "teacher") else f"{statistics.median(kept(name, i) for i in range(n)):.0%}"
        print(f"| {name} | {auc:.4f} | {params:,.0f} | {params / teacher_params:.1%} | {share} |")
    for name in ("student", "student distilled"):
        print(f"{name}: gain kept per seed " + ", ".join(f"{kept(name, i):.0%}" for i in range(n)))


if __name__ == "__main__":
    main()
