"""A small real world for the Studio: two trained runs, a recall bundle, a model stream with gate verdicts,
a rejection and drift windows, serving files and a pipeline history. Built once per test session."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from recforge.bundle.drift_status import append_drift_window
from recforge.bundle.stream import publish, record_rejection
from recforge.bundle.verdict import gate_verdict
from recforge.config import build_config
from recforge.online.drift import DriftConfig, DriftMonitor
from recforge.pipeline.rank import train
from recforge.pipeline.recall import recall_train
from recforge.pipeline.serve import write_serving_files

from support import small_synthetic

TOKEN = "s3cret-admin"  # the rollback admin token the live `recforge ui` is started with
ODD_NAME = '<b>odd & "name"</b>'  # a config name the pages must show as text, never as markup
CHANNELS = [
    {"name": "itemcf", "top_n": 50, "quota": 60},
    {"name": "popular", "quota": 30, "weight": 0.1},
]
HISTORY = [
    {"date": "2026-12-01", "step": "samples", "status": "ok", "attempt": 1, "error": None},
    {"date": "2026-12-01", "step": "train", "status": "failed", "attempt": 1, "error": "disk full <tmp>"},
    {"date": "2026-12-01", "step": "train", "status": "ok", "attempt": 2, "error": None},
    {"date": "2026-12-02", "step": "wait", "status": "skipped", "attempt": 1, "error": None},
]


@dataclass
class World:
    root: Path
    runs: Path
    stream: Path
    serving: Path
    pipeline: Path
    versions: list[str]


def _config(name: str, embedding_dim: int) -> dict:
    tree = small_synthetic(epochs=2)
    tree["name"], tree["embedding_dim"] = name, embedding_dim
    tree["features"][0]["storage"] = {"kind": "dynamic", "admission": {"kind": "counter", "min_count": 2}}
    tree["recall"] = {
        "interactions": {"positive": "click = 1", "split": {"method": "per_user", "seed": 1}},
        "channels": CHANNELS,
        "merge": {"k": 80},
        "eval": {"ks": [10]},
        "progress": False,
    }
    return tree


def _renamed(bundle: Path, staging: Path, version: str) -> Path:
    shutil.copytree(bundle, staging)
    manifest = json.loads((staging / "manifest.json").read_text())
    manifest["version"] = version
    (staging / "manifest.json").write_text(json.dumps(manifest))
    return staging


def _drift_windows(run: Path, stream: Path) -> None:
    """Judge the test rows against the train rows in windows, as the streaming trainer's drift watch does."""
    reference = pq.read_table(run / "samples" / "train.parquet").slice(0, 8000)
    recent = pq.read_table(run / "samples" / "test.parquet")
    monitor = DriftMonitor(reference, ["age", "price", "category_id"], label="click", config=DriftConfig(window=1500))
    for report in monitor.observe(recent.slice(0, 4500)):  # three full windows (the test split holds ~6,000 rows)
        append_drift_window(stream, report.to_json())


def build_world(root: Path) -> World:
    runs, stream = root / "runs", root / "stream"
    first = build_config(_config(ODD_NAME, 8))
    train(first, runs / "deepfm-a")
    train(build_config(_config("deepfm-b", 4)), runs / "deepfm-b")
    recall = recall_train(first, root / "recall")
    bundle = runs / "deepfm-a" / "bundle"
    metrics = json.loads((runs / "deepfm-a" / "metrics.json").read_text())["valid"]
    versions = ["20261201-000000-aaaaaa", "20261202-000000-bbbbbb"]
    for name in versions:
        staged = _renamed(bundle, root / f"staging-{name}", name)
        publish(staged, stream, verdict=gate_verdict(True, [], metrics, judge="validation gate"))
        shutil.rmtree(staged)
    record_rejection(stream, "20261203-000000-cccccc", ["auc 0.5012 < min_auc 0.6"], {"auc": 0.5012})
    _drift_windows(runs / "deepfm-a", stream)
    serving = write_serving_files(first, root, recall.bundle, candidates=80)
    pipeline = root / "pipeline"
    pipeline.mkdir()
    lines = [
        {**h, "started": f"{h['date']}T01:00:00", "finished": f"{h['date']}T01:0{n}:30"} for n, h in enumerate(HISTORY)
    ]
    (pipeline / "history.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return World(root, runs, stream, serving, pipeline, versions)
