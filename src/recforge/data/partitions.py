"""Split a behavior log into one partition per UTC day, as an upstream job lands them for the daily pipeline.

OUT_TEMPLATE = "events/dt={date}"  ->  events/dt=2024-01-01/part-0.parquet + _SUCCESS, ...
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recforge.data.readers import write_parquet
from recforge.errors import DataError


def day_of_rows(table: pa.Table, time_column: str) -> np.ndarray:
    """Each row's UTC day as days since 1970-01-01, from epoch seconds or a timestamp column."""
    if time_column not in table.column_names:
        raise DataError(f"no time column {time_column!r}; the log has {table.column_names}\n  fix: pass --time-column")
    column = table[time_column]
    if pa.types.is_timestamp(column.type):
        column = pc.cast(pc.cast(column, pa.timestamp("s", tz="UTC")), pa.int64())
    elif not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise DataError(f"column {time_column!r} is {column.type}, not epoch seconds or a timestamp")
    if column.null_count:
        raise DataError(f"column {time_column!r} has {column.null_count:,} null times\n  fix: drop or fill them first")
    return np.floor_divide(column.to_numpy().astype(np.float64), 86_400).astype(np.int64)


def write_partitions(
    table: pa.Table, time_column: str, out_template: str, marker: str | None = "_SUCCESS"
) -> dict[str, int]:
    """One `part-0.parquet` (+ `marker`) per day under `out_template.format(date=...)`; returns rows per date."""
    if "{date}" not in out_template:
        raise DataError(f"{out_template!r} has no {{date}} placeholder\n  fix: e.g. events/dt={{date}}")
    days = day_of_rows(table, time_column)
    counts: dict[str, int] = {}
    for day in np.unique(days):
        date = (dt.date(1970, 1, 1) + dt.timedelta(days=int(day))).isoformat()
        folder = Path(out_template.format(date=date))
        rows = np.flatnonzero(days == day)
        write_parquet(table.take(pa.array(rows)), str(folder / "part-0.parquet"))
        if marker:
            (folder / marker).touch()
        counts[date] = int(rows.size)
    return counts
