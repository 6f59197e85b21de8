"""Event streams against a real redis-server: exact round trips, consumer groups, redelivery, replay."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recforge.data.streams import open_sink, open_source, produce
from recforge.data.streams.codec import decode_rows, encode_rows
from recforge.errors import ConfigError, DataError

from support import REPO


def events(n: int, start: int = 0) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(range(start, start + n), pa.int64()),
            "item": pa.array([f"i{i % 7}" for i in range(n)]),
            "price": pa.array([0.1 * i + 1e-17 for i in range(n)], pa.float64()),
            "tags": pa.array([[i, i + 1] for i in range(n)], pa.list_(pa.int32())),
            "clicked": pa.array([i % 3 == 0 for i in range(n)]),
            "timestamp": pa.array([1_700_000_000 + (n - i) for i in range(n)], pa.int64()),
            "when": pa.array([1_700_000_000_000 + i for i in range(n)], pa.timestamp("ms")),
            "note": pa.array([None if i % 4 else "x" for i in range(n)], pa.string()),
        }
    )


def test_codec_round_trips_types_exactly() -> None:
    table = events(50)
    assert decode_rows(encode_rows(table), table.schema).equals(table)
    with pytest.raises(DataError, match="cannot travel"):
        encode_rows(pa.table({"b": pa.array([b"x"], pa.binary())}))


def test_redis_stream_delivers_everything_once_per_group_and_redelivers_unacked(redis_url: str) -> None:
    url = redis_url + "?stream=ev&group=g1&consumer=c1"
    with open_sink(url) as sink:
        assert sink.write(events(300)) == 300
    with open_source(url) as source:
        first = source.read(max_rows=100)
        assert first is not None and first.num_rows == 100
        source.ack(first)
        second = source.read(max_rows=100)
        assert second is not None
        # crash: second is never acked
    with open_source(url) as source:
        again = source.read(max_rows=100)
        assert again is not None and again.table.equals(second.table), "unacked rows come back first"
        source.ack(again)
        rest = []
        while (batch := source.read(max_rows=64, timeout_ms=100)) is not None:
            rest.append(batch.table)
            source.ack(batch)
    got = pa.concat_tables([first.table, again.table, *rest])
    assert got.equals(events(300)), "every event exactly once for the group, in order, types intact"
    other = open_source(redis_url + "?stream=ev&group=g2")  # another group reads everything again
    assert other.read(max_rows=1000) is not None
    other.close()


def test_produce_replays_in_time_order_at_a_rate(redis_url: str, tmp_path: Path) -> None:
    table = events(200)
    report = produce(table, redis_url + "?stream=log", rate=1000, progress=False)
    assert report.rows == 200
    with open_source(redis_url + "?stream=log&group=g") as source:
        batch = source.read(max_rows=500)
    assert batch is not None
    assert batch.table["timestamp"].to_pylist() == sorted(table["timestamp"].to_pylist())
    with pytest.raises(DataError, match="time column"):
        produce(table.drop(["timestamp"]), redis_url + "?stream=x", progress=False)


def test_stream_produce_cli(redis_url: str, tmp_path: Path) -> None:
    pq.write_table(events(120), tmp_path / "log.parquet")
    proc = subprocess.run(
        [sys.executable, "-m", "recforge", "stream", "produce", str(tmp_path / "log.parquet"),
         "--to", redis_url + "?stream=cli", "--rate", "2000"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and "produced 120 events" in proc.stdout, proc.stderr
    with open_source(redis_url + "?stream=cli&group=g") as source:
        batch = source.read(max_rows=500)
    assert batch is not None and batch.num_rows == 120


def test_bad_urls_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="stream"):
        open_source("redis://127.0.0.1:1/0")  # no ?stream=
    with pytest.raises(ConfigError, match="nosuch"):
        open_source("nosuch://x/y")
    with pytest.raises(ConfigError, match="topic"):
        open_sink("kafka://127.0.0.1:9092")


@pytest.mark.skipif(
    not os.environ.get("RECFORGE_KAFKA_BROKERS"),
    reason="no Kafka broker here: set RECFORGE_KAFKA_BROKERS=host:port to run against a real one",
)
def test_kafka_round_trip_against_a_real_broker() -> None:
    brokers = os.environ["RECFORGE_KAFKA_BROKERS"]
    topic = f"recforge-test-{os.getpid()}"
    with open_sink(f"kafka://{brokers}/{topic}") as sink:
        sink.write(events(50))
    rows = []
    with open_source(f"kafka://{brokers}/{topic}?group=t") as source:
        while sum(t.num_rows for t in rows) < 50 and (batch := source.read(max_rows=50, timeout_ms=5000)):
            rows.append(batch.table)
            source.ack(batch)
    assert pa.concat_tables(rows).equals(events(50))


def test_position_tells_redelivered_rows_from_new_ones_per_partition() -> None:
    from recforge.data.streams import Position, StreamBatch

    position = Position()
    position.advance([("", 5, 0), ("", 5, 2), ("p1", 9, 0)])
    batch = StreamBatch(pa.table({"x": [1, 2, 3, 4]}), positions=[("", 5, 1), ("", 5, 2), ("", 5, 3), ("p1", 10, 0)])
    assert position.new_rows(batch) == [2, 3]
    assert Position.from_json(position.to_json()).to_json() == {"": [5, 2], "p1": [9, 0]}
    assert Position().new_rows(StreamBatch(pa.table({"x": [1, 2]}))) == [0, 1]  # positions unknown: all new


def test_redis_source_pages_through_its_own_pending_rows_after_a_restart(redis_url: str) -> None:
    url = redis_url + "?stream=pending-paging&group=g&consumer=c"
    with open_sink(url) as sink:
        sink.write(events(250))
    with open_source(url) as source:
        while source.read(max_rows=100, timeout_ms=100) is not None:
            pass  # read everything, ack nothing (a crash before the checkpoint)
    with open_source(url) as again:
        pages = []
        while (batch := again.read(max_rows=100, timeout_ms=100)) is not None:
            pages.append(batch.num_rows)
            again.ack(batch)
    assert pages == [100, 100, 50], "pending rows come back once each, page by page"
