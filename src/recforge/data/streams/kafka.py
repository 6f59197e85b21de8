"""Kafka through confluent-kafka (extra `kafka`): the same JSON events, the schema in a message header.

Offsets are committed only by `ack` (auto-commit off), so a consumer that dies before acking gets the
batch again: at-least-once, like the Redis source.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from recforge.data.streams.base import SINKS, SOURCES, StreamBatch, StreamSink, StreamSource, StreamUrl
from recforge.data.streams.codec import decode_rows, encode_rows, schema_from_text, schema_to_text
from recforge.errors import ConfigError

SCHEMA_HEADER = "recforge-schema"


def _kafka() -> Any:
    try:
        import confluent_kafka
    except ImportError:
        raise ConfigError("stream url", "kafka:// needs confluent-kafka", fix="pip install 'recforge[kafka]'") from None
    return confluent_kafka


def _topic(url: StreamUrl) -> str:
    if not url.path:
        raise ConfigError("stream url", f"{url.text} names no topic", fix="kafka://BROKERS/TOPIC?group=...")
    return url.path


class KafkaStreamSink(StreamSink):
    def __init__(self, url: StreamUrl) -> None:
        self.producer = _kafka().Producer({"bootstrap.servers": url.netloc})
        self.topic = _topic(url)

    def write(self, table: pa.Table) -> int:
        schema = schema_to_text(table.schema)
        rows = encode_rows(table)
        for row in rows:
            self.producer.produce(self.topic, value=row, headers=[(SCHEMA_HEADER, schema)])
            self.producer.poll(0)
        self.producer.flush()
        return len(rows)


class KafkaStreamSource(StreamSource):
    def __init__(self, url: StreamUrl) -> None:
        kafka = _kafka()
        self._partition = kafka.TopicPartition
        self.consumer = kafka.Consumer(
            {
                "bootstrap.servers": url.netloc,
                "group.id": url.param("group", "recforge"),
                "enable.auto.commit": False,
                "auto.offset.reset": url.param("start", "earliest"),
            }
        )
        self.topic = _topic(url)
        self.consumer.subscribe([self.topic])

    def read(self, max_rows: int = 1024, timeout_ms: int = 1000) -> StreamBatch | None:
        messages = [m for m in self.consumer.consume(num_messages=max_rows, timeout=timeout_ms / 1000) if not m.error()]
        if not messages:
            return None
        header = dict(messages[0].headers() or []).get(SCHEMA_HEADER)
        table = decode_rows([m.value() for m in messages], schema_from_text(header) if header else None)
        last: dict[int, int] = {}
        for m in messages:
            last[m.partition()] = max(last.get(m.partition(), -1), m.offset())
        offsets = [self._partition(self.topic, p, o + 1) for p, o in sorted(last.items())]
        positions = [(str(m.partition()), int(m.offset()), 0) for m in messages]
        return StreamBatch(table, offsets, ",".join(f"{p}:{o}" for p, o in sorted(last.items())), positions)

    def ack(self, batch: StreamBatch) -> None:
        if batch.offsets:
            self.consumer.commit(offsets=batch.offsets, asynchronous=False)

    def close(self) -> None:
        self.consumer.close()


SOURCES.register("kafka")(KafkaStreamSource)
SINKS.register("kafka")(KafkaStreamSink)
