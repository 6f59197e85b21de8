"""The model steps: train warm-started from the last published version, gate, publish to the stream."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from recforge.bundle import load_bundle
from recforge.bundle.bundle import read_bundle_manifest
from recforge.bundle.stream import current, prune, publish, record_rejection, versions
from recforge.data.readers import read_table
from recforge.pipeline.daily.configs import samples_config
from recforge.pipeline.daily.data_steps import date_samples
from recforge.pipeline.daily.layout import DayLayout, newer_live, set_live, write_json
from recforge.pipeline.daily.step import DayRun, GateRejected, Skip, step
from recforge.pipeline.rank import train as train_run
from recforge.train.checkpoint import CHECKPOINT
from recforge.train.gate import judge

JUDGE = "recforge pipeline gate"


def warm_start_for(day: DayRun) -> Path | None:
    """The version published for the latest earlier date that the stream still holds (None: train cold)."""
    dates = sorted((Path(day.cfg.work) / "dates").glob("*/done/publish.json"), reverse=True)
    for marker in dates:
        layout = DayLayout(Path(day.cfg.work), dt.date.fromisoformat(marker.parent.parent.name))
        if layout.date >= day.date:
            continue
        version = day.cfg.stream_dir / str(layout.done_record("publish")["version"])
        if version.is_dir():
            return version
    return None


@step("train", "train")
def train(day: DayRun) -> dict[str, Any]:
    """pipeline.train on the date's samples; a retry resumes from the run's checkpoint."""
    parent = warm_start_for(day)
    out = day.layout.path("train")
    resume = (out / CHECKPOINT).exists()
    run = train_run(samples_config(day.cfg, date_samples(day)), out, resume=resume, warm_start=parent)
    version = read_bundle_manifest(run.bundle)["version"]
    return {"version": version, "warm_start": str(parent) if parent else None, "valid": run.metrics["valid"]}


def _hold_back(day: DayRun) -> None:
    reason = newer_live(Path(day.cfg.work), "model", day.date)
    if reason:
        raise Skip(reason)


@step("gate", "gate.json")
def gate(day: DayRun) -> dict[str, Any]:
    """Judge the date's bundle on its held-out split against the serving version (train.gate.judge)."""
    _hold_back(day)
    stream = day.cfg.stream_dir
    candidate = load_bundle(day.layout.path("train") / "bundle")
    holdout_path = getattr(date_samples(day), day.cfg.holdout)
    if holdout_path is None:
        raise GateRejected(f"the samples of {day.date} have no {day.cfg.holdout!r} split for the gate")
    serving = load_bundle(current(stream).path) if stream.is_dir() and versions(stream) else None
    result = judge(candidate, read_table(holdout_path), day.cfg.gate, serving)
    verdict = result.verdict(JUDGE)
    write_json(day.layout.path("gate.json"), {"version": result.version, "verdict": verdict})
    if not result.passed:
        record_rejection(stream, result.version, result.reasons, {"metrics": result.metrics, "serving": result.serving})
        raise GateRejected(f"version {result.version} rejected by the gate: {'; '.join(result.reasons)}")
    return {"version": result.version, "metrics": result.metrics}


@step("publish")
def publish_step(day: DayRun) -> dict[str, Any]:
    """Copy the gated bundle into the model stream (LATEST moves), prune old versions."""
    _hold_back(day)
    judged = json.loads(day.layout.path("gate.json").read_text())
    stream = day.cfg.stream_dir
    version = str(judged["version"])
    if not (stream / version).is_dir():  # a retry after the copy landed publishes nothing twice
        publish(day.layout.path("train") / "bundle", stream, verdict=judged["verdict"])
    pruned = prune(stream, day.cfg.gate.keep)
    set_live(Path(day.cfg.work), "model", day.date)
    return {"version": version, "pruned": pruned}
