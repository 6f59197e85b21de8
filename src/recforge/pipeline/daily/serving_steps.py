"""The serving steps: refresh the recall bundle, push user and item features to the store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from recforge.config import PipelineConfig
from recforge.config.daily import DailyConfig
from recforge.pipeline.daily.configs import window_config
from recforge.pipeline.daily.layout import newer_live, point_link, set_live
from recforge.pipeline.daily.step import DayRun, Skip, step
from recforge.pipeline.recall import recall_train
from recforge.pipeline.serve import write_serving_files
from recforge.registry import Registry
from recforge.serving.store import StoreOptions, pipeline_sources, push_entities

RECALL_LINK = "recall"  # WORK/recall -> the live date's recall bundle


def _window(day: DayRun) -> PipelineConfig:
    return window_config(day.cfg, day.layout.path("window") / "behavior.parquet")


@step("recall", "recall")
def recall(day: DayRun) -> dict[str, Any]:
    """Fit the pipeline's recall channels on the date window; WORK/recall points at the newest date's bundle."""
    pipeline = _window(day)
    if pipeline.recall is None:
        raise Skip("the pipeline YAML has no `recall:` block")
    run = recall_train(pipeline, day.layout.path("recall"))
    work = Path(day.cfg.work)
    held = newer_live(work, "recall", day.date)
    if held is None:
        point_link(work / RECALL_LINK, run.bundle)
        set_live(work, "recall", day.date)
    return {"bundle": str(run.bundle), "live": held is None, "valid": run.metrics.get("valid")}


Pusher = Callable[[DailyConfig, PipelineConfig], dict[str, Any]]
PUSHERS: Registry[Pusher] = Registry("feature store kind")


@PUSHERS.register("redis")
def push_redis(cfg: DailyConfig, pipeline: PipelineConfig) -> dict[str, Any]:
    """User and item rows to Redis (serving.store.push_entities), where `recforge serve` looks them up."""
    store = cfg.store
    options = StoreOptions(
        kind="redis", url=store.url, prefix=store.prefix, batch_rows=store.batch_rows, ttl_s=store.ttl_s
    )
    reports = push_entities(pipeline_sources(pipeline, cfg.pipeline), options, progress=False)
    return {"pushed": [report.summary() for report in reports]}


@PUSHERS.register("embedded")
def push_embedded(cfg: DailyConfig, pipeline: PipelineConfig) -> dict[str, Any]:
    """WORK/tables/*.parquet and WORK/serving.yaml, which `recforge serve WORK/models` reads (embedded store)."""
    link = Path(cfg.work) / RECALL_LINK
    path = write_serving_files(pipeline, cfg.work, link if link.exists() else None)
    return {"serving": str(path)}


@step("push")
def push(day: DayRun) -> dict[str, Any]:
    """Features of the date's tables to the configured store (`store.kind`)."""
    held = newer_live(Path(day.cfg.work), "store", day.date)
    if held:
        raise Skip(held)
    record = PUSHERS.get(day.cfg.store.kind, yaml_path="store.kind")(day.cfg, _window(day))
    set_live(Path(day.cfg.work), "store", day.date)
    return record
