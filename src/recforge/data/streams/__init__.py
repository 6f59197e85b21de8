"""Event streams (Redis Streams, Kafka) behind one source/sink interface, and a log replayer."""

from recforge.data.streams import kafka, redis_streams  # noqa: F401 (register the schemes)
from recforge.data.streams.base import (
    SINKS,
    SOURCES,
    Position,
    RowPosition,
    StreamBatch,
    StreamSink,
    StreamSource,
    open_sink,
    open_source,
    parse_url,
)
from recforge.data.streams.produce import ProduceReport, produce

__all__ = [
    "SINKS",
    "SOURCES",
    "Position",
    "ProduceReport",
    "RowPosition",
    "StreamBatch",
    "StreamSink",
    "StreamSource",
    "open_sink",
    "open_source",
    "parse_url",
    "produce",
]
