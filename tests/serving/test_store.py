"""Feature stores: the synthetic world round trip, push counts, Redis down and back, the push CLI (what every
kind does, the value types, missing keys and key forms, is in test_store_contract.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest
import yaml
from typer.testing import CliRunner

from recforge.cli import app
from recforge.config.schema import SyntheticConfig
from recforge.data import generate_synthetic, write_parquet
from recforge.errors import ConfigError, DataError
from recforge.serving.store import EmbeddedStore, FeatureStore, RedisStore, StoreOptions, build_store

from support import assert_bit_equal, expected_rows

WORLD = SyntheticConfig(n_users=400, n_items=150, n_categories=8, n_impressions=2_000, seed=3)


@pytest.fixture(scope="module")
def world() -> dict[str, tuple[pa.Table, str]]:
    raw = generate_synthetic(WORLD)
    assert raw.users is not None and raw.items is not None
    return {"user": (raw.users, raw.user_key), "item": (raw.items, raw.item_key)}


def redis_store(url: str, **options: object) -> RedisStore:
    return RedisStore(StoreOptions.model_validate({"kind": "redis", "url": url, "prefix": "t", **options}))


def pushed(url: str, tables: dict[str, tuple[pa.Table, str]], **options: object) -> RedisStore:
    store = redis_store(url, **options)
    for entity, (table, key) in tables.items():
        store.push(entity, table, key, batch_rows=64, progress=False)
    return store


def stores(url: str, tables: dict[str, tuple[pa.Table, str]]) -> list[FeatureStore]:
    """The same tables behind both kinds; Redis read by a fresh store, so it decodes from the server alone."""
    pushed(url, tables).close()
    return [EmbeddedStore(tables), redis_store(url)]


def test_synthetic_world_round_trips_exactly(redis_url: str, world: dict[str, tuple[pa.Table, str]]) -> None:
    for store in stores(redis_url, world):
        for entity, (table, key) in world.items():
            keys = [*table[key].to_pylist()[::-1], 10**9]  # every row, reversed, plus one unknown key
            assert_bit_equal(store.get_table(entity, keys), expected_rows(table, key, keys))
            assert store.get(entity, keys) == [*table.to_pylist()[::-1], None]
            assert store.schema(entity) == table.schema
        store.close()


def test_reads_follow_a_re_push_and_survive_script_flush_chunking_and_acls(
    redis_server: Any, redis_url: str, world: dict[str, tuple[pa.Table, str]], caplog: pytest.LogCaptureFixture
) -> None:
    items, key = world["item"]
    reader = pushed(redis_url, {"item": (items, key)})
    keys = list(range(1, 2_501))  # more than one READ_CHUNK of keys
    assert_bit_equal(reader.get_table("item", keys), expected_rows(items, key, keys))

    changed = items.set_column(3, "price", items["price"].cast(pa.float32())).append_column("new", items["brand_id"])
    pushed(redis_url, {"item": (changed, key)}).close()  # another process re-pushes with a new layout
    with redis_server.client() as client:
        client.script_flush()
    assert_bit_equal(reader.get_table("item", keys[:5]), changed.slice(0, 5))  # no refresh() needed
    assert reader.stats()["errors"] == 0

    with redis_server.client() as client:  # a server whose ACL forbids scripts: reads fall back to pipelines
        client.acl_setuser("noscript", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-@scripting"])
    host = redis_url.removeprefix("redis://")
    limited = RedisStore(StoreOptions(kind="redis", url=f"redis://noscript:pw@{host}", prefix="t"))
    assert "pw" not in limited.url
    assert_bit_equal(limited.get_table("item", keys), expected_rows(changed, key, keys))
    assert limited.get("item", [2, -1]) == [changed.slice(1, 1).to_pylist()[0], None]
    assert limited.stats()["errors"] == 0 and limited.healthy()
    assert "refuses the read script" in caplog.text


def test_push_counts_are_exact_and_null_keys_are_reported(redis_server: Any, redis_url: str) -> None:
    n, batch_rows = 1_003, 100
    ids = pa.array([None if i % 97 == 0 else i for i in range(n)], pa.int64())  # 11 null keys
    table = pa.table({"item_id": ids, "price": pa.array(np.arange(n) * 0.5)})
    store = redis_store(redis_url, ttl_s=600)
    report = store.push("item", table, batch_rows=batch_rows, progress=False)
    nulls = ids.null_count
    assert nulls == 11
    assert (report.rows, report.written, report.skipped_null_keys, report.batches) == (n, n - nulls, nulls, 11)
    assert "skipped (null item_id): 11" in report.summary()
    with redis_server.client() as client:
        assert client.dbsize() == n - nulls + 1  # the rows plus the entity's meta hash
        assert 0 < client.ttl("t:item:1") <= 600
        assert client.hgetall("t:item:2") == {b"item_id": b"2", b"price": b"1.0"}
        assert int(client.hget("t:item", "rows")) == n - nulls
    assert store.get("item", [2, 0]) == [{"item_id": 2, "price": 1.0}, None]


def test_redis_down_serves_defaults_fast_and_recovers_without_restart(
    redis_server: Any, redis_url: str, world: dict[str, tuple[pa.Table, str]]
) -> None:
    server = redis_server
    users, key = world["user"]
    store = pushed(redis_url, {"user": (users, key)}, timeout_ms=50, retry_min_ms=20, retry_max_ms=200)
    first = users.slice(0, 3).to_pylist()
    assert store.get("user", [1, 2, 3]) == first and store.healthy()

    server.stop()
    for _ in range(5):
        started = time.perf_counter()
        assert store.get("user", [1, 2, 3]) == [None, None, None]
        lookup = store.lookup("user", [1, 2], ["age"])
        # Not a speed test: a fail-fast client answers in milliseconds, redis-py's defaults would take seconds.
        assert time.perf_counter() - started < 1.0
        assert lookup.missing == 2 and lookup.table.schema.field("age").type == pa.int64()
    assert not store.healthy()
    stats = store.stats()
    assert stats["healthy"] is False and stats["errors"] >= 1 and stats["fallbacks"] == 5 * 5

    server.start()  # a restarted cache is empty: the job pushes again
    pushed(redis_url, {"user": (users, key)}).close()
    deadline = time.monotonic() + 5
    while not store.healthy():
        assert time.monotonic() < deadline, "the store did not reconnect"
        time.sleep(0.02)
    assert store.get("user", [1, 2, 3]) == first
    assert store.stats()["healthy"] is True
    store.close()


def test_hung_redis_times_out_and_fallback_answers(
    redis_server: Any, redis_url: str, world: dict[str, tuple[pa.Table, str]], tmp_path: Path
) -> None:
    users, key = world["user"]
    write_parquet(users, str(tmp_path / "users.parquet"))
    options = {
        "kind": "redis",
        "url": redis_url,
        "prefix": "t",
        "timeout_ms": 50,
        "retry_min_ms": 10_000,
        "fallback": {"kind": "embedded", "entities": {"user": {"path": "users.parquet"}}},
    }
    store = build_store(options, base_dir=tmp_path)
    pushed(redis_url, {"user": (users, key)}).close()
    assert store.get("user", [5]) == users.slice(4, 1).to_pylist()

    redis_server.pause()  # accepts connections, never answers
    started = time.perf_counter()
    assert store.get("user", [5, 10**9]) == [users.slice(4, 1).to_pylist()[0], None]  # from the fallback
    assert time.perf_counter() - started < 1.0
    assert_bit_equal(store.get_table("user", [7]), expected_rows(users, key, [7]))
    stats = store.stats()
    assert (stats["errors"], stats["fallbacks"], stats["hits"], stats["misses"]) == (1, 3, 3, 1), stats
    assert not store.healthy()  # the circuit stays open for retry_min_ms: no socket wait
    redis_server.resume()
    store.close()


def test_options_are_validated_with_yaml_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"serving\.store\.timeout_ms"):
        build_store({"kind": "redis", "timeout_ms": 0})
    with pytest.raises(ConfigError, match="unknown feature store kind 'memcached'"):
        build_store({"kind": "memcached"})
    with pytest.raises(ConfigError, match=r"entities\.user\.path"):
        build_store({"kind": "embedded", "entities": {"user": {"key": "user_id"}}})


def test_an_entity_without_a_table_answers_defaults(redis_url: str) -> None:
    """The serving default `{kind: embedded}` holds no tables; a Redis prefix may not be pushed yet."""
    for store in (build_store({"kind": "embedded"}), redis_store(redis_url)):
        assert store.get("user", [1, 2]) == [None, None]
        result = store.lookup("user", [1, 2], ["age"])
        assert result.missing == 2 and result.table.column_names == ["user_id", "age"]
        assert result.table["user_id"].to_pylist() == [1, 2] and store.table("user") is None
        stats = store.stats()
        assert (stats["hits"], stats["misses"], stats["fallbacks"], stats["errors"]) == (0, 4, 0, 0), stats


def test_unstorable_columns_are_refused_before_writing(redis_url: str) -> None:
    table = pa.table({"item_id": [1], "m": pa.array([[("a", 1)]], pa.map_(pa.string(), pa.int64()))})
    with pytest.raises(DataError, match=r"column\(s\) \['m \(map"):
        redis_store(redis_url).push("item", table, progress=False)


def test_cli_pushes_explicit_tables(redis_url: str, world: dict[str, tuple[pa.Table, str]], tmp_path: Path) -> None:
    users, items = world["user"][0], world["item"][0]
    items = items.set_column(0, "item_id", pc.if_else(pc.equal(items["item_id"], 3), None, items["item_id"]))
    write_parquet(users, str(tmp_path / "users.parquet"))
    pacsv.write_csv(items, tmp_path / "items.csv")
    args = ["features", "push", "--redis", redis_url, "--prefix", "cli", "--batch-rows", "100", "--no-progress"]
    args += ["--users", str(tmp_path / "users.parquet"), "--items", str(tmp_path / "items.csv")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    n_users, n_items = users.num_rows, items.num_rows
    assert f"user: {n_users:,} of {n_users:,} rows pushed in 4 batches" in result.output
    assert f"item: {n_items - 1:,} of {n_items:,} rows pushed in 2 batches" in result.output
    assert "skipped (null item_id): 1" in result.output
    store = RedisStore(StoreOptions(kind="redis", url=redis_url, prefix="cli"))
    assert store.get("user", [12]) == users.slice(11, 1).to_pylist()
    assert store.get("item", [3, 4]) == [None, items.slice(3, 1).to_pylist()[0]]


def test_cli_pushes_a_pipeline_configs_tables(redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({"data": {"source": "synthetic", "synthetic": WORLD.model_dump()}}))
    args = ["features", "push", str(config), "--redis", redis_url, "--no-progress", "--set", "data.synthetic.seed=4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"user: {WORLD.n_users:,} of {WORLD.n_users:,} rows pushed in 1 batches" in result.output
    assert f"item: {WORLD.n_items:,} of {WORLD.n_items:,} rows pushed in 1 batches" in result.output
    raw = generate_synthetic(WORLD.model_copy(update={"seed": 4}))
    store = redis_store(redis_url, prefix="recforge")
    assert raw.items is not None
    assert_bit_equal(store.get_table("item", [9, 1]), raw.items.take([8, 0]))
