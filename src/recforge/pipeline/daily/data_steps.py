"""The data steps: wait for the date's partition, build the date window's samples."""

from __future__ import annotations

import json
from typing import Any

from recforge.data import SamplePaths
from recforge.pipeline.daily.configs import behavior_spec, window_config
from recforge.pipeline.daily.partitions import partition_path, wait_for, write_window
from recforge.pipeline.daily.step import DayRun, step
from recforge.pipeline.rank import run_samples


@step("wait")
def wait(day: DayRun) -> dict[str, Any]:
    """Block until the partition (and its marker) is there, at most `partitions.timeout_s`."""
    return {"partition": partition_path(day.cfg, day.date), "waited_s": wait_for(day.cfg, day.date, day.clock)}


@step("samples", "window", "samples")
def samples(day: DayRun) -> dict[str, Any]:
    """The window's partitions -> window/behavior.parquet -> the pipeline's join, labels and split."""
    window = write_window(day.cfg, behavior_spec(day.cfg), day.date, day.layout.path("window"))
    built = run_samples(window_config(day.cfg, window), day.layout.path("samples"))
    return {"counts": built.counts}


def date_samples(day: DayRun) -> SamplePaths:
    """The samples the `samples` step built for this date (samples/samples.json)."""
    record = json.loads((day.layout.path("samples") / "samples.json").read_text())
    return SamplePaths(**record["samples"])
