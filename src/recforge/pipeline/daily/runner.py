"""Run steps for dates: done markers make reruns idempotent, failures are retried with backoff, and every
attempt lands in WORK/history.jsonl."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from recforge.config.daily import DailyConfig, RetryConfig
from recforge.errors import ConfigError, RecforgeError
from recforge.pipeline.daily import data_steps, model_steps, serving_steps  # noqa: F401 - registers the steps
from recforge.pipeline.daily.clock import Clock
from recforge.pipeline.daily.configs import base_config
from recforge.pipeline.daily.history import Entry, Status, append, iso
from recforge.pipeline.daily.layout import DayLayout
from recforge.pipeline.daily.partitions import PartitionTimeout
from recforge.pipeline.daily.step import STEPS, DayRun, GateRejected, Skip
from recforge.pipeline.rank import check as check_pipeline

log = logging.getLogger(__name__)

# Failures a retry cannot change: a wrong config, a partition that never came, a gate verdict.
FINAL_ERRORS: tuple[type[Exception], ...] = (ConfigError, PartitionTimeout, GateRejected)


def check_daily(cfg: DailyConfig) -> None:
    """Before any step runs: the pipeline YAML loads, reads a `tables` source and names a valid model."""
    check_pipeline(base_config(cfg))


def backoff_s(retry: RetryConfig, attempt: int) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): backoff_s * factor^(attempt-1), capped."""
    return float(min(retry.backoff_s * retry.factor ** (attempt - 1), retry.max_backoff_s))


@dataclass(frozen=True)
class DayResult:
    date: dt.date
    entries: list[Entry]

    @property
    def ok(self) -> bool:
        return not any(e.status == "failed" for e in self.final())

    def final(self) -> list[Entry]:
        """The last entry of each step."""
        return list({e.step: e for e in self.entries}.values())


def _describe(exc: Exception) -> str:
    """A recforge error's own message (it names the problem and the fix); anything else with its type."""
    return str(exc) if isinstance(exc, RecforgeError) else f"{type(exc).__name__}: {exc}"


def _record(
    cfg: DailyConfig,
    date: dt.date,
    name: str,
    status: Status,
    attempt: int,
    started: dt.datetime,
    clock: Clock,
    error: str | None = None,
) -> Entry:
    entry = Entry(date.isoformat(), name, status, attempt, iso(started), iso(clock.now()), error)
    append(Path(cfg.work), entry)
    (log.warning if status == "failed" else log.info)("%s %s: %s%s", date, name, status, f" ({error})" if error else "")
    return entry


def clear(cfg: DailyConfig, name: str, date: dt.date) -> None:
    """Forget that `name` ran for `date`: its done marker and its outputs go."""
    layout = DayLayout.of(cfg, date)
    layout.marker(name).unlink(missing_ok=True)
    for output in STEPS.get(name, yaml_path="--step").outputs:
        path = layout.path(output)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def run_step(cfg: DailyConfig, name: str, date: dt.date, clock: Clock, *, force: bool = False) -> list[Entry]:
    """Run one step for one date: skipped when its done marker exists, else tried up to `retry.attempts` times."""
    spec = STEPS.get(name, yaml_path="--step")
    layout = DayLayout.of(cfg, date)
    if force:
        clear(cfg, name, date)
    if layout.is_done(name):
        done = layout.done_record(name)
        return [_record(cfg, date, name, "skipped", 0, clock.now(), clock, f"done at {done.get('finished')}")]
    entries: list[Entry] = []
    for attempt in range(1, cfg.retry.attempts + 1):
        started = clock.now()
        try:
            record = spec.run(DayRun(cfg, date, clock))
        except Skip as skip:
            return [*entries, _record(cfg, date, name, "skipped", attempt, started, clock, skip.reason)]
        except Exception as exc:  # every failure is recorded; the last one is the step's result
            entries.append(_record(cfg, date, name, "failed", attempt, started, clock, _describe(exc)))
            if isinstance(exc, FINAL_ERRORS) or attempt == cfg.retry.attempts:
                return entries
            clock.sleep(backoff_s(cfg.retry, attempt))
            continue
        layout.mark_done(name, {**record, "attempt": attempt, "started": iso(started), "finished": iso(clock.now())})
        return [*entries, _record(cfg, date, name, "ok", attempt, started, clock)]
    return entries


def run_day(cfg: DailyConfig, date: dt.date, clock: Clock, *, force: bool = False) -> DayResult:
    """Every configured step in order; after a failure the rest are recorded as skipped."""
    entries: list[Entry] = []
    failed: str | None = None
    for name in cfg.steps:
        if failed is not None:
            entries.append(_record(cfg, date, name, "skipped", 0, clock.now(), clock, f"step {failed!r} failed"))
            continue
        step_entries = run_step(cfg, name, date, clock, force=force)
        entries += step_entries
        if step_entries[-1].status == "failed":
            failed = name
    return DayResult(date, entries)


def dates_between(first: dt.date, last: dt.date) -> list[dt.date]:
    if last < first:
        raise ConfigError("--to", f"{last} is before --from {first}", fix="give --from <= --to")
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def backfill(cfg: DailyConfig, first: dt.date, last: dt.date, clock: Clock, *, force: bool = False) -> list[DayResult]:
    """Run each date from `first` to `last` in order (done steps are skipped unless `force`)."""
    return [run_day(cfg, date, clock, force=force) for date in dates_between(first, last)]
