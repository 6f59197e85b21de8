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


@dataclass
class StreamBatch:
    """Rows read from a stream and the offsets that acknowledge them (opaque to callers)."""

    table: pa.Table
    offsets: list[Any] = field(default_factory=list)
    last_offset: str | None = None

    @property
    def num_rows(self) -> int:
        return self.table.num_rows


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
