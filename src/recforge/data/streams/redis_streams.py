"""Redis Streams: XADD to append, consumer groups (XREADGROUP) to read, XACK to acknowledge.

One entry per event (field `e`: the JSON row); the Arrow schema sits at `STREAM:schema`. A consumer
first re-reads its own pending entries (delivered before a crash, never acked), then new ones.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import redis

from recforge.data.streams.base import (
    SINKS,
    SOURCES,
    RowPosition,
    StreamBatch,
    StreamSink,
    StreamSource,
    StreamUrl,
)
from recforge.data.streams.codec import decode_rows, encode_rows, schema_from_text, schema_to_text
from recforge.errors import EndpointError

FIELD = b"e"


def _client(url: StreamUrl) -> redis.Redis:
    """A connected client: redis-py connects lazily, so a Redis that is down would surface mid-job as a traceback."""
    client = redis.Redis.from_url(f"redis://{url.netloc}/{url.path or '0'}")
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        client.close()
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EndpointError(
            f"{url.text}: cannot reach Redis at {url.netloc} ({reason})"
            "\n  fix: start redis-server there, or point the URL at a running one"
        ) from None
    return client


def _position(entry_id: bytes) -> RowPosition:
    ms, _, seq = entry_id.decode().partition("-")
    return ("", int(ms), int(seq or 0))


class RedisStreamSink(StreamSink):
    def __init__(self, url: StreamUrl, chunk: int = 1000) -> None:
        self.stream = url.param("stream")  # a bad URL is a ConfigError before any connection attempt
        self.chunk = chunk
        self.client = _client(url)
        self._schema_written = False

    def write(self, table: pa.Table) -> int:
        if not self._schema_written:
            self.client.set(f"{self.stream}:schema", schema_to_text(table.schema))
            self._schema_written = True
        rows = encode_rows(table)
        for start in range(0, len(rows), self.chunk):
            with self.client.pipeline(transaction=False) as pipe:
                for row in rows[start : start + self.chunk]:
                    pipe.xadd(self.stream, {FIELD: row})
                pipe.execute()
        return len(rows)

    def close(self) -> None:
        self.client.close()


class RedisStreamSource(StreamSource):
    def __init__(self, url: StreamUrl) -> None:
        self.stream = url.param("stream")
        self.group = url.param("group", "recforge")
        self.consumer = url.param("consumer", "consumer-1")
        start = url.param("start", "0")  # "0": the whole stream for a new group; "$": only new events
        self.client = _client(url)
        try:
            self.client.xgroup_create(self.stream, self.group, id=start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._pending_from: str | None = "0"  # re-read own pending entries from here; None once done
        self._schema: pa.Schema | None = None

    def _schema_now(self) -> pa.Schema | None:
        if self._schema is None:
            text = self.client.get(f"{self.stream}:schema")
            self._schema = schema_from_text(text) if text else None
        return self._schema

    def read(self, max_rows: int = 1024, timeout_ms: int = 1000) -> StreamBatch | None:
        if self._pending_from is not None:  # entries delivered to this consumer before a restart, not acked
            entries = self._read(self._pending_from, max_rows, None)
            if entries:
                self._pending_from = entries[-1][0].decode()
                return self._batch(entries)
            self._pending_from = None
        entries = self._read(">", max_rows, timeout_ms)
        return self._batch(entries) if entries else None

    def _read(self, last: str, count: int, block: int | None) -> list[tuple[bytes, dict[bytes, bytes]]]:
        reply: Any = self.client.xreadgroup(self.group, self.consumer, {self.stream: last}, count=count, block=block)
        return list(reply[0][1]) if reply else []

    def _batch(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> StreamBatch:
        ids = [entry_id for entry_id, _ in entries]
        table = decode_rows([fields[FIELD] for _, fields in entries], self._schema_now())
        return StreamBatch(table, ids, ids[-1].decode(), [_position(entry_id) for entry_id in ids])

    def ack(self, batch: StreamBatch) -> None:
        if batch.offsets:
            self.client.xack(self.stream, self.group, *batch.offsets)

    def close(self) -> None:
        self.client.close()


SOURCES.register("redis")(RedisStreamSource)
SINKS.register("redis")(RedisStreamSink)
