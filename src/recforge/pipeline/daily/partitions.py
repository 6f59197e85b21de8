"""Date partitions: where one date's rows land, whether they are complete, and the window a date trains on."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pyarrow as pa

from recforge.config.daily import DailyConfig
from recforge.config.tables import TableFile
from recforge.data.readers import write_parquet
from recforge.data.tablefile import read_table_file
from recforge.errors import DataError
from recforge.pipeline.daily.clock import Clock
from recforge.pipeline.daily.layout import write_json

log = logging.getLogger(__name__)


class PartitionTimeout(DataError):
    """The date's partition was not ready within `partitions.timeout_s` (a retry would only wait longer)."""


def partition_path(cfg: DailyConfig, date: dt.date) -> str:
    return cfg.partitions.path.format(date=date.isoformat())


def is_ready(cfg: DailyConfig, date: dt.date) -> bool:
    """The partition exists and, with a marker configured, the marker file is inside it."""
    path = Path(partition_path(cfg, date))
    if not path.exists():
        return False
    return cfg.partitions.marker is None or (path / cfg.partitions.marker).is_file()


def wait_for(cfg: DailyConfig, date: dt.date, clock: Clock) -> float:
    """Poll until the date's partition is ready; returns the seconds waited, or raises PartitionTimeout."""
    start = clock.now()
    while not is_ready(cfg, date):
        waited = (clock.now() - start).total_seconds()
        if waited >= cfg.partitions.timeout_s:
            what = f"{partition_path(cfg, date)}" + (f"/{cfg.partitions.marker}" if cfg.partitions.marker else "")
            raise PartitionTimeout(
                f"{what} did not appear within {cfg.partitions.timeout_s:g} s\n"
                "  fix: check the upstream job, or raise partitions.timeout_s; then rerun the date"
            )
        clock.sleep(min(cfg.partitions.poll_s, cfg.partitions.timeout_s - waited))
    return (clock.now() - start).total_seconds()


def window_dates(cfg: DailyConfig, date: dt.date) -> list[dt.date]:
    """The dates whose partitions date D trains on, oldest first: D-(window_days-1)..D."""
    return [date - dt.timedelta(days=back) for back in range(cfg.window_days - 1, -1, -1)]


def write_window(cfg: DailyConfig, behavior: TableFile, date: dt.date, out: Path) -> Path:
    """Concatenate the window's ready partitions, each parsed as the pipeline's behavior table says, into
    OUT/behavior.parquet (derived columns are left to the pipeline); OUT/window.json lists what went in."""
    parts, used, missing = [], [], []
    for day in window_dates(cfg, date):
        if not is_ready(cfg, day):
            missing.append(day.isoformat())
            continue
        spec = behavior.model_copy(update={"path": partition_path(cfg, day), "derive": {}})
        table, _ = read_table_file(spec, "data.tables.behavior")
        parts.append(table)
        used.append(day.isoformat())
    if date.isoformat() not in used:
        raise DataError(f"{partition_path(cfg, date)}: the date's own partition is not ready\n  fix: run `wait` first")
    if missing:
        log.warning("window of %s: partitions %s are not ready and were left out", date, missing)
    try:
        table = pa.concat_tables(parts, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"the partitions of {used} have different columns or types: {exc}") from None
    path = out / "behavior.parquet"
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(table, str(path))
    write_json(out / "window.json", {"dates": used, "missing": missing, "rows": table.num_rows})
    return path
