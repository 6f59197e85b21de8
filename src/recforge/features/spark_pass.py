"""The one Spark pass that every data-dependent feature fit shares.

One `mapInArrow` reads the training rows once: each Python worker runs every feature's own code on its Arrow
batches (an id's column, a tag's tokens, a number's finite floats) and keeps partial statistics of its
partition (value counts, moments); only those partials cross back to the JVM, where one aggregation merges
them across partitions and the driver collects what the states need (values counted >= `min_count`, the
moments). Fitting the features one job at a time instead made every feature pay a pass over the rows, a
Python round trip per row and a job's fixed cost (measured in bench/RESULTS.md, "Features on Spark").

Output rows of the pass, one schema for all features: `f` (the feature's index; ROWS for the row count),
`n`, the moment sums `s`, `ss`, `mn`, `mx` (set on a feature's moments row only) and one value column `v{k}`
per counting feature (set on its value rows only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recforge.features.base import FeatureState
from recforge.features.numeric import Moments

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

ROWS = -1  # `f` of the rows-counted row
MERGE_ROWS = 1 << 20  # a partition's pending (value, count) rows merged once they exceed this (then twice the merged)
MOMENT_COLUMNS = {"s": "sum", "ss": "sum", "mn": "min", "mx": "max"}


@dataclass(frozen=True)
class PassStats:
    """What the pass gathered for one feature."""

    counts: pa.Table | None  # columns v, n (int64): every value counted >= min_count, in no order; None: not asked,
    # or more distinct values than `max_distinct`
    moments: Moments | None


@dataclass(frozen=True)
class PassPlan:
    """One feature's share of the pass: `values` (its own code: the values of an Arrow table, nulls ignored),
    which statistics of them, and `state`, the fitted state built from them on the driver."""

    values: Callable[[pa.Table], pa.Array | pa.ChunkedArray]
    state: Callable[[PassStats], FeatureState]
    counts: bool = True
    moments: bool = False
    min_count: int = 1
    max_distinct: int | None = None  # more distinct values than this: counts stay in Spark (PassStats.counts None)


class ValueCounter:
    """One partition's counts of one feature's values: counted per batch, merged in amortized steps."""

    def __init__(self, value_type: pa.DataType) -> None:
        self.value_type = value_type
        self.parts: list[pa.Table] = []
        self.pending = 0
        self.limit = MERGE_ROWS

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        counted = pc.value_counts(pc.drop_null(values))
        self.parts.append(pa.table({"v": counted.field("values"), "n": counted.field("counts")}))
        self.pending += len(counted)
        if self.pending > self.limit:
            self.parts = [self.merged()]
            self.pending = self.parts[0].num_rows
            self.limit = max(MERGE_ROWS, 2 * self.pending)

    def merged(self) -> pa.Table:
        if not self.parts:
            return pa.table({"v": pa.array([], self.value_type), "n": pa.array([], pa.int64())})
        table = pa.concat_tables(self.parts)
        if len(self.parts) == 1:
            return table
        summed = table.group_by("v").aggregate([("n", "sum")])
        return pa.table({"v": summed["v"], "n": summed["n_sum"]})


class MomentSums:
    """One partition's count, sum, sum of squares and range of one feature's values."""

    def __init__(self) -> None:
        self.count, self.total, self.total_sq, self.low, self.high = 0, 0.0, 0.0, np.inf, -np.inf

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        x = np.asarray(flat(pc.drop_null(values)).to_numpy(zero_copy_only=False), dtype=np.float64)
        if x.size:
            self.count += int(x.size)
            self.total += float(x.sum())
            self.total_sq += float((x * x).sum())
            self.low, self.high = min(self.low, float(x.min())), max(self.high, float(x.max()))

    def columns(self) -> dict[str, list[float | None]]:
        if not self.count:
            return {"s": [0.0], "ss": [0.0], "mn": [None], "mx": [None]}
        return {"s": [self.total], "ss": [self.total_sq], "mn": [self.low], "mx": [self.high]}


def flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def pass_schema(value_types: dict[int, pa.DataType]) -> pa.Schema:
    fields = [("f", pa.int32()), ("n", pa.int64()), *((name, pa.float64()) for name in MOMENT_COLUMNS)]
    return pa.schema([*fields, *((f"v{k}", kind) for k, kind in value_types.items())])


def rows_of(schema: pa.Schema, f: int, columns: dict[str, pa.Array | Sequence[Any]]) -> pa.Table:
    """Rows of feature `f` with `columns` set and every other column null."""
    n = len(columns["n"])
    arrays = {**columns, "f": pa.array(np.full(n, f, dtype=np.int32))}
    return pa.table(
        [_array(arrays[x.name], x.type) if x.name in arrays else pa.nulls(n, x.type) for x in schema], schema=schema
    )


def _array(values: pa.Array | Sequence[Any], kind: pa.DataType) -> pa.Array:
    return values.cast(kind) if isinstance(values, pa.Array) else pa.array(values, kind)


def partial_stats(
    extract: list[Callable[[pa.Table], pa.Array | pa.ChunkedArray]], moments: list[bool], schema: pa.Schema
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The executors' side: every feature's statistics of one partition (only picklable code is captured)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        counters = {k: ValueCounter(schema.field(f"v{k}").type) for k in range(len(extract)) if f"v{k}" in schema.names}
        sums = {k: MomentSums() for k, wanted in enumerate(moments) if wanted}
        rows = 0
        for batch in batches:
            table = pa.Table.from_batches([batch])
            rows += table.num_rows
            for k, values_of in enumerate(extract):
                values = values_of(table)
                if k in counters:
                    counters[k].add(values.cast(counters[k].value_type))
                if k in sums:
                    sums[k].add(values)
        out = [rows_of(schema, ROWS, {"n": [rows]})]
        for k, counter in counters.items():
            counted = counter.merged()
            out.append(rows_of(schema, k, {"n": flat(counted["n"]), f"v{k}": flat(counted["v"])}))
        out += [rows_of(schema, k, {"n": [total.count], **total.columns()}) for k, total in sums.items()]
        yield from pa.concat_tables(out).to_batches()

    return run


def run_pass(frame: DataFrame, empty: pa.Table, plans: dict[str, PassPlan]) -> tuple[dict[str, PassStats], int]:
    """Every plan's statistics of `frame` (whose rows look like `empty`) in one pass; and the number of rows."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    ordered = list(plans.values())
    schema = pass_schema({k: p.values(empty).type for k, p in enumerate(ordered) if p.counts})
    run = partial_stats([p.values for p in ordered], [p.moments for p in ordered], schema)
    emitted = frame.mapInArrow(run, from_arrow_schema(schema))
    keys = ["f", *(name for name in schema.names if name.startswith("v"))]
    merged = emitted.groupBy(*keys).agg(
        F.sum("n").alias("n"), *(getattr(F, how)(name).alias(name) for name, how in MOMENT_COLUMNS.items())
    )
    thresholds = [F.lit(x) for k, p in enumerate(ordered) for x in (k, p.min_count)]
    minimum = F.element_at(F.create_map(F.lit(ROWS), F.lit(0), *thresholds), F.col("f"))
    table, too_many = _collect(merged.where(F.col("s").isNotNull() | (F.col("n") >= minimum)), ordered)
    rows = pc.sum(table["n"].filter(pc.equal(table["f"], ROWS))).as_py() or 0
    return _stats(table, ordered, too_many, plans), int(rows)


def _collect(merged: DataFrame, ordered: list[PassPlan]) -> tuple[pa.Table, set[int]]:
    """The merged rows on the driver, leaving out the value rows of features over their `max_distinct`."""
    from pyspark.sql import functions as F

    limited = {k: p.max_distinct for k, p in enumerate(ordered) if p.counts and p.max_distinct is not None}
    if not limited:
        return merged.toArrow(), set()
    merged = merged.persist()
    try:
        sizes: dict[int, int] = dict(merged.where(F.col("s").isNull()).groupBy("f").count().collect())
        too_many = {k for k, most in limited.items() if sizes.get(k, 0) > most}
        kept = merged.where(F.col("s").isNotNull() | ~F.col("f").isin(*too_many)) if too_many else merged
        return kept.toArrow(), too_many
    finally:
        merged.unpersist()


def _stats(
    table: pa.Table, ordered: list[PassPlan], too_many: set[int], plans: dict[str, PassPlan]
) -> dict[str, PassStats]:
    f = table["f"].to_numpy()
    moment_row = pc.is_valid(table["s"]).to_numpy(zero_copy_only=False)
    out = {}
    for k, (name, plan) in enumerate(zip(plans, ordered, strict=True)):
        counts = None
        if plan.counts and k not in too_many:
            rows = pa.array((f == k) & ~moment_row)
            counts = pa.table({"v": table[f"v{k}"].filter(rows), "n": table["n"].filter(rows).cast(pa.int64())})
        out[name] = PassStats(counts, _moments(table, (f == k) & moment_row) if plan.moments else None)
    return out


def _moments(table: pa.Table, row: np.ndarray) -> Moments:
    found = table.filter(pa.array(row)).to_pylist()
    if not found:
        return Moments(0, 0.0, 0.0, np.inf, -np.inf)
    r = found[0]
    low, high = r["mn"], r["mx"]
    return Moments(
        int(r["n"]), float(r["s"]), float(r["ss"]), np.inf if low is None else low, -np.inf if high is None else high
    )
