"""Bulk writes of entity tables into Redis: pipelined batches, a progress bar, exact counts.

A row whose key is null cannot be addressed, so it is skipped, counted in the report and logged, never
dropped silently. A key written twice keeps its last row (every field is overwritten, nulls included).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import redis

from recforge.errors import DataError
from recforge.progress import Progress
from recforge.serving.store.base import StoreError
from recforge.serving.store.codec import ENCODING, encode_batch, storable_schema

log = logging.getLogger(__name__)


def meta_key(prefix: str, entity: str) -> str:
    """The hash with an entity's schema and key column (row keys always have one more `:` part)."""
    return f"{prefix}:{entity}"


@dataclass(frozen=True)
class PushReport:
    """What one push did: rows read, rows written, rows skipped for a null key, round trips, time."""

    entity: str
    key: str
    rows: int
    written: int
    skipped_null_keys: int
    batches: int
    seconds: float
    target: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for the CLI."""
        return (
            f"{self.entity}: {self.written:,} of {self.rows:,} rows pushed in {self.batches:,} batches "
            f"({self.seconds:.2f} s) to {self.target}; skipped (null {self.key}): {self.skipped_null_keys:,}"
        )


def _slices(data: pa.Table | Iterable[pa.RecordBatch], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of at most `batch_rows` rows; a table is cut from row 0, so the batch count is exact."""
    batches = data.combine_chunks().to_batches() if isinstance(data, pa.Table) else data
    for batch in batches:
        for start in range(0, batch.num_rows, batch_rows):
            yield batch.slice(start, batch_rows)


def push_batches(
    client: redis.Redis,
    prefix: str,
    entity: str,
    data: pa.Table | Iterable[pa.RecordBatch],
    key: str,
    *,
    batch_rows: int,
    ttl_s: int | None,
    total_rows: int | None,
    progress: bool,
    where: str,
) -> PushReport:
    """Write every row of `data` to PREFIX:ENTITY:KEY hashes, `batch_rows` rows per pipelined round trip.

    The entity's meta hash (Arrow schema, key column, encoding) is written first, so readers can decode
    rows as they arrive; a Redis failure raises StoreError saying how far the push got (rerunning is safe).
    """
    if ":" in entity:
        raise DataError(f"{where}: entity names cannot contain ':', got {entity!r}")
    label = f"{where} entity {entity!r}"
    total = data.num_rows if isinstance(data, pa.Table) else total_rows
    started = time.perf_counter()
    rows = written = batches = 0
    bar = Progress(f"push {entity}", total, unit="rows", enabled=progress)
    try:
        for batch, schema in _with_schema(data, batch_rows, key, label):
            if batch is None:  # the schema is known: readers can decode rows from here on
                _write_meta(client, prefix, entity, schema, key)
                continue
            written += _write_keyed(client, f"{prefix}:{entity}:", batch, schema, key, ttl_s)
            rows += batch.num_rows
            batches += 1
            bar.update(batch.num_rows)
        if rows or isinstance(data, pa.Table):
            client.hset(meta_key(prefix, entity), mapping={"rows": written, "pushed_at": time.time()})
    except redis.RedisError as exc:
        raise StoreError(
            f"{label}: push failed after {written:,} rows in {batches:,} batches: {exc}\n"
            "  fix: check the server (redis-cli -u URL ping) and rerun; a push overwrites, so rerunning is safe"
        ) from exc
    finally:
        bar.close()
    report = PushReport(entity, key, rows, written, rows - written, batches, time.perf_counter() - started, where)
    if report.skipped_null_keys:
        log.warning(
            "%s: %s of %s rows have a null %r and were not pushed; fill the key or drop those rows upstream",
            label,
            f"{report.skipped_null_keys:,}",
            f"{rows:,}",
            key,
        )
    log.info("%s", report.summary())
    return report


def _with_schema(
    data: pa.Table | Iterable[pa.RecordBatch], batch_rows: int, key: str, label: str
) -> Iterator[tuple[pa.RecordBatch | None, pa.Schema]]:
    """(None, schema) once the storable schema is known (a table's: before any rows), then (batch, schema)
    per slice; a batch whose schema differs from the first is a DataError."""
    source = data.schema if isinstance(data, pa.Table) else None
    schema = storable_schema(source, key, label) if source is not None else None
    if schema is not None:
        yield None, schema
    for number, batch in enumerate(_slices(data, batch_rows), start=1):
        if source is None or schema is None:
            source, schema = batch.schema, storable_schema(batch.schema, key, label)
            yield None, schema
        elif not batch.schema.equals(source):
            raise DataError(
                f"{label}: batch {number} has schema {batch.schema}, the first had {source}\n"
                "  fix: push tables with one schema"
            )
        yield batch, schema


def _write_keyed(
    client: redis.Redis, head: str, batch: pa.RecordBatch, schema: pa.Schema, key: str, ttl_s: int | None
) -> int:
    """Write the rows of `batch` that have a key; how many that was (the rest are counted as skipped)."""
    valid = pc.is_valid(batch.column(key))
    n_null = batch.num_rows - pc.sum(valid, min_count=0).as_py()
    kept = batch.filter(valid) if n_null else batch
    _write_rows(client, head, kept, schema, key, ttl_s)
    return int(kept.num_rows)


def _write_meta(client: redis.Redis, prefix: str, entity: str, schema: pa.Schema, key: str) -> None:
    version = str(time.time_ns())  # readers compare it on every read and reload the schema when it changes
    mapping = {"schema": schema.serialize().to_pybytes(), "key": key, "encoding": ENCODING, "version": version}
    client.hset(meta_key(prefix, entity), mapping=mapping)  # type: ignore[arg-type]


def _write_rows(
    client: redis.Redis, head: str, batch: pa.RecordBatch, schema: pa.Schema, key: str, ttl_s: int | None
) -> None:
    """One pipelined round trip: HSET every field of every row (and EXPIRE when a TTL is set)."""
    if not batch.num_rows:
        return
    columns = encode_batch(batch, schema)
    names = [n.encode() for n in schema.names]
    pipe = client.pipeline(transaction=False)
    for k, values in zip(batch.column(key).to_pylist(), zip(*columns, strict=True), strict=True):
        row_key = head + str(k)
        pipe.execute_command("HSET", row_key, *[x for pair in zip(names, values, strict=True) for x in pair])
        if ttl_s:
            pipe.expire(row_key, ttl_s)
    pipe.execute()
