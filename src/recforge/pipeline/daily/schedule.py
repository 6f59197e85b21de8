"""One machine's scheduler: run each new date as soon as its partition is ready, forever or up to a date."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

from recforge.config.daily import DailyConfig
from recforge.errors import ConfigError
from recforge.pipeline.daily.clock import Clock
from recforge.pipeline.daily.history import read_history
from recforge.pipeline.daily.partitions import is_ready
from recforge.pipeline.daily.runner import DayResult, run_day

log = logging.getLogger(__name__)


def first_date(cfg: DailyConfig, start: dt.date | None) -> dt.date:
    """`start`, else the day after the history's last date, else DAILY.yaml's `start`."""
    if start is not None:
        return start
    dates = [dt.date.fromisoformat(e.date) for e in read_history(Path(cfg.work))]
    if dates:
        return max(dates) + dt.timedelta(days=1)
    if cfg.start is not None:
        return cfg.start
    raise ConfigError("start", "no date to start from: the history is empty", fix="set `start:` or pass --from DATE")


def schedule(
    cfg: DailyConfig,
    clock: Clock,
    *,
    start: dt.date | None = None,
    until: dt.date | None = None,
    once: bool = False,
    on_day: Callable[[DayResult], None] | None = None,
) -> list[DayResult]:
    """Run dates in order from `first_date`; each waits (polling every `partitions.poll_s`) until its partition
    is ready. Stops after `until`, or with `once` at the first date not ready yet. A failed date is left for
    `backfill` and the next date goes on, as a scheduler would. `on_day` sees each date's result as it ends."""
    date = first_date(cfg, start)
    results: list[DayResult] = []
    while until is None or date <= until:
        if not is_ready(cfg, date):
            if once:
                break
            clock.sleep(cfg.partitions.poll_s)
            continue
        result = run_day(cfg, date, clock)
        if not result.ok:
            log.warning("%s failed: rerun it with `recforge pipeline backfill --from %s --to %s`", date, date, date)
        results.append(result)
        if on_day is not None:
            on_day(result)
        date += dt.timedelta(days=1)
    return results
