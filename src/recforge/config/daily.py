"""DAILY.yaml: the daily pipeline (`recforge pipeline run|backfill|schedule|export-airflow`).

One file names the pipeline YAML to train, where each date's partition lands, the steps to run and
how to retry them. Relative paths resolve against DAILY.yaml's own folder, so the same file works
from any working directory (a scheduler's, Airflow's worker's).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from recforge.config.feature_kinds import Strict
from recforge.config.gate import GateConfig
from recforge.config.loader import load_tree, validate_block
from recforge.errors import ConfigError

# The order a day runs in; each name is a step registered in recforge.pipeline.daily.steps.
StepName = Literal["wait", "samples", "train", "gate", "publish", "recall", "push"]
STEP_NAMES: tuple[StepName, ...] = ("wait", "samples", "train", "gate", "publish", "recall", "push")
# What each step reads, written by an earlier one (the window and samples, the bundle, the verdict).
NEEDS: dict[str, str] = {"train": "samples", "gate": "train", "publish": "gate", "recall": "samples", "push": "samples"}


class PartitionConfig(Strict):
    """Where one date's behavior rows land and how to tell the partition is complete."""

    path: str = Field(
        description="Template of one date's partition, `{date}` = YYYY-MM-DD: a Parquet/CSV file or a Parquet "
        "directory, e.g. `events/dt={date}`."
    )
    marker: str | None = Field(
        "_SUCCESS",
        description="File inside the partition directory whose presence says it is complete (Spark/Hive "
        "`_SUCCESS`); null: the partition path existing is enough.",
    )
    timeout_s: float = Field(6 * 3600, gt=0, description="The wait step fails when the partition is not ready by then.")
    poll_s: float = Field(60, gt=0, description="Seconds between readiness checks (wait step and scheduler).")


class RetryConfig(Strict):
    """Every step but `wait` and a gate rejection is retried: attempt n waits backoff_s * factor^(n-1)."""

    attempts: int = Field(3, ge=1, description="Tries per step and date, the first included.")
    backoff_s: float = Field(30, ge=0, description="Wait before the second attempt.")
    factor: float = Field(2.0, ge=1, description="Each later wait is this many times the one before.")
    max_backoff_s: float = Field(900, ge=0, description="No wait is longer than this.")


class DailyStoreConfig(Strict):
    """Where the push step writes user and item features for serving."""

    kind: Literal["embedded", "redis"] = Field(
        "embedded",
        description="embedded: WORK/tables/*.parquet and WORK/serving.yaml beside the model stream; redis: rows "
        "pushed to `url` under `prefix`.",
    )
    url: str = Field("redis://127.0.0.1:6379/0", description="redis: server URL.")
    prefix: str = Field("recforge", min_length=1, description="redis: rows land at PREFIX:ENTITY:KEY.")
    ttl_s: int | None = Field(None, ge=1, description="redis: pushed rows expire after this many seconds.")
    batch_rows: int = Field(1_000, ge=1, description="redis: rows per pipelined write.")


class AirflowConfig(Strict):
    """What `export-airflow` writes into the DAG."""

    dag_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$", description="Default: recforge_<DAILY file stem>.")
    schedule: str = Field("@daily", description="Airflow schedule (cron or preset).")


class DailyConfig(Strict):
    """The daily pipeline; defaults give: wait for `_SUCCESS`, 1-day window, 3 attempts, embedded store."""

    pipeline: str = Field(description="Pipeline YAML (data.source: tables) whose behavior table the partitions feed.")
    overrides: list[str] = Field(default_factory=list, description="`--set` overrides of the pipeline YAML.")
    work: str = Field(description="Work directory: history.jsonl, dates/DATE/..., and the live pointers.")
    stream: str | None = Field(None, description="Model stream the publish step writes; default WORK/models.")
    partitions: PartitionConfig
    window_days: int = Field(1, ge=1, description="Samples of date D come from the partitions D-(window_days-1)..D.")
    start: dt.date | None = Field(None, description="First date the scheduler runs (default: after history's last).")
    holdout: Literal["test", "valid"] = Field("test", description="Which split of the date's samples the gate scores.")
    gate: GateConfig = GateConfig()
    store: DailyStoreConfig = DailyStoreConfig()
    retry: RetryConfig = RetryConfig()
    steps: list[StepName] = Field(
        default_factory=lambda: list(STEP_NAMES), min_length=1, description="Steps to run, a subset of the order."
    )
    airflow: AirflowConfig = AirflowConfig()

    @property
    def stream_dir(self) -> Path:
        return Path(self.stream) if self.stream else Path(self.work) / "models"


def _resolve(value: Any, base: Path) -> Any:
    if isinstance(value, str) and "://" not in value:
        return str((base / value).resolve()) if not Path(value).is_absolute() else value
    return value


def load_daily(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> DailyConfig:
    """Read DAILY.yaml with `--set` overrides; relative paths resolve against the file's folder."""
    file = Path(path)
    tree = load_tree(file)
    cfg = validate_block(DailyConfig, tree, str(file), overrides)
    base = file.resolve().parent
    cfg.pipeline, cfg.work, cfg.stream = (_resolve(v, base) for v in (cfg.pipeline, cfg.work, cfg.stream))
    cfg.partitions.path = _resolve(cfg.partitions.path, base)
    if "{date}" not in cfg.partitions.path:
        raise ConfigError(
            "partitions.path",
            f"{cfg.partitions.path!r} has no {{date}} placeholder",
            fix="name each date's partition, e.g. events/dt={date}",
            file=str(file),
        )
    _check_steps(cfg.steps, str(file))
    return cfg


def _check_steps(steps: list[StepName], file: str) -> None:
    order = [s for s in STEP_NAMES if s in steps]
    if steps != order:
        raise ConfigError("steps", f"{steps} is out of order", fix=f"list them as {order}", file=file)
    for name in steps:
        need = NEEDS.get(name)
        if need is not None and need not in steps:
            raise ConfigError("steps", f"{name!r} reads what {need!r} writes", fix=f"add {need!r}", file=file)


def parse_date(text: str, option: str) -> dt.date:
    """A `--date`-style argument as a date, or a ConfigError naming the option."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(option, f"{text!r} is not a date", fix="write it as YYYY-MM-DD, e.g. 2026-12-01") from None
