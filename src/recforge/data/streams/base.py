"""Event streams behind one interface: a source hands out batches of rows with offsets, a sink appends.

A source is at-least-once: rows stay pending until `ack(batch)`; a consumer that crashes before
acking gets them again on restart (`read` first re-delivers its own pending rows). Whoever needs
exactly-once (the streaming trainer) stores the last acked offset with its checkpoint and skips what
it has already trained on. Sources and sinks are picked by URL scheme from a registry:

    redis://HOST:PORT/DB?stream=events&group=trainer&consumer=c1
    kafka://BROKER1,BROKER2/TOPIC?group=trainer
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa

from recforge.errors import ConfigError
from recforge.registry import Registry

RowPosition = tuple[str, int, int]
"""Where a row sits in its stream: (partition, major, minor); Redis ("", ms, seq), Kafka (partition, offset, 0)."""


@dataclass
class StreamBatch:
    """Rows read from a stream, the offsets that acknowledge them (opaque) and each row's position."""

    table: pa.Table
    offsets: list[Any] = field(default_factory=list)
    last_offset: str | None = None
    positions: list[RowPosition] = field(default_factory=list)

    @property
    def num_rows(self) -> int:
        return self.table.num_rows


class Position:
    """The last row consumed per partition: what a checkpoint stores so a restart skips trained rows.

    Positions order rows within a partition, so `is_new` tells a re-delivered row (at or before the
    position) from a row never seen; `advance` moves past a batch. JSON-friendly via `to_json`.
    """

    def __init__(self, last: dict[str, tuple[int, int]] | None = None) -> None:
        self.last: dict[str, tuple[int, int]] = dict(last or {})

    def is_new(self, row: RowPosition) -> bool:
        seen = self.last.get(row[0])
        return seen is None or (row[1], row[2]) > seen

    def new_rows(self, batch: StreamBatch) -> list[int]:
        """Indices of the batch's rows after this position (all of them when positions are unknown)."""
        if not batch.positions:
            return list(range(batch.num_rows))
        return [i for i, row in enumerate(batch.positions) if self.is_new(row)]

    def advance(self, rows: list[RowPosition]) -> None:
        for partition, major, minor in rows:
            if self.is_new((partition, major, minor)):
                self.last[partition] = (major, minor)

    def to_json(self) -> dict[str, list[int]]:
        return {p: [major, minor] for p, (major, minor) in sorted(self.last.items())}

    @classmethod
    def from_json(cls, data: dict[str, list[int]] | None) -> Position:
        return cls({p: (int(v[0]), int(v[1])) for p, v in (data or {}).items()})

    def __repr__(self) -> str:
        return f"Position({self.to_json()})"


class StreamSource(ABC):
    @abstractmethod
    def read(self, max_rows: int = 1024, timeout_ms: int = 1000) -> StreamBatch | None:
        """Up to `max_rows` rows, waiting at most `timeout_ms` for the first; None when none came."""

    @abstractmethod
    def ack(self, batch: StreamBatch) -> None:
        """Mark a batch as processed: it is never delivered to this consumer group again."""

    def close(self) -> None:  # noqa: B027 - optional
        pass

    def __enter__(self) -> StreamSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class StreamSink(ABC):
    @abstractmethod
    def write(self, table: pa.Table) -> int:
        """Append every row of `table` (in order); returns the count written."""

    def close(self) -> None:  # noqa: B027 - optional
        pass

    def __enter__(self) -> StreamSink:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass(frozen=True)
class StreamUrl:
    scheme: str
    netloc: str
    path: str
    params: dict[str, str]
    text: str

    def param(self, name: str, default: str | None = None) -> str:
        value = self.params.get(name, default)
        if value is None:
            raise ConfigError("stream url", f"{self.text} needs `?{name}=...`", fix=f"add {name}= to the URL")
        return value


def parse_url(url: str) -> StreamUrl:
    parts = urlsplit(url)
    params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return StreamUrl(parts.scheme, parts.netloc, parts.path.lstrip("/"), params, url)


SOURCES: Registry[Callable[[StreamUrl], StreamSource]] = Registry("stream source")
SINKS: Registry[Callable[[StreamUrl], StreamSink]] = Registry("stream sink")


def open_source(url: str) -> StreamSource:
    parsed = parse_url(url)
    return SOURCES.get(parsed.scheme, yaml_path="stream url scheme")(parsed)


def open_sink(url: str) -> StreamSink:
    parsed = parse_url(url)
    return SINKS.get(parsed.scheme, yaml_path="stream url scheme")(parsed)
