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
    head = f"{prefix}:{entity}:"
    started = time.perf_counter()
    rows = written = skipped = batches = 0
    source_schema = data.schema if isinstance(data, pa.Table) else None
    schema = storable_schema(source_schema, key, label) if source_schema is not None else None
    bar = Progress(f"push {entity}", total, unit="rows", enabled=progress)
    try:
        if schema is not None:
            _write_meta(client, prefix, entity, schema, key)
        for batch in _slices(data, batch_rows):
            if source_schema is None:
                source_schema = batch.schema
                schema = storable_schema(source_schema, key, label)
                _write_meta(client, prefix, entity, schema, key)
            elif not batch.schema.equals(source_schema):
                raise DataError(
                    f"{label}: batch {batches + 1} has schema {batch.schema}, the first had {source_schema}\n"
                    "  fix: push tables with one schema"
                )
            assert schema is not None
            valid = pc.is_valid(batch.column(key))
            n_null = batch.num_rows - pc.sum(valid, min_count=0).as_py()
            kept = batch.filter(valid) if n_null else batch
            _write_rows(client, head, kept, schema, key, ttl_s)
            rows += batch.num_rows
            written += kept.num_rows
            skipped += n_null
            batches += 1
            bar.update(batch.num_rows)
        if schema is not None:
            client.hset(meta_key(prefix, entity), mapping={"rows": written, "pushed_at": time.time()})
    except redis.RedisError as exc:
        raise StoreError(
            f"{label}: push failed after {written:,} rows in {batches:,} batches: {exc}\n"
            "  fix: check the server (redis-cli -u URL ping) and rerun; a push overwrites, so rerunning is safe"
        ) from exc
    finally:
        bar.close()
    report = PushReport(entity, key, rows, written, skipped, batches, time.perf_counter() - started, where)
    if skipped:
        log.warning(
            "%s: %s of %s rows have a null %r and were not pushed; fill the key or drop those rows upstream",
            label,
            f"{skipped:,}",
            f"{rows:,}",
            key,
        )
    log.info("%s", report.summary())
    return report


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
