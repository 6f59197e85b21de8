"""Three simulated days on one machine: partitions land late, Redis is down at the first feature push, and a
backfill of the first day rebuilds its samples byte for byte (issue 20, Done-when)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from daily_world import FakeClock, World, write_daily

from recforge.bundle.bundle import read_manifest
from recforge.bundle.stream import current, versions
from recforge.config.daily import load_daily
from recforge.pipeline.daily import backfill, read_history, schedule

from redis_server import RedisServer

UTC = dt.timezone.utc
DAYS = [dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4)]
HISTORY_KEYS = {"date", "step", "status", "attempt", "started", "finished", "error"}


def _land_schedule(world: World, events: Path, clock: FakeClock, t0: dt.datetime) -> None:
    """01-01 and 01-02 are there at t0; 01-03's rows land 2 h late and its _SUCCESS 3 h late; 01-04 5 h late."""
    for date in ("2024-01-01", "2024-01-02"):
        world.land(events, date)
    clock.at(t0 + dt.timedelta(days=1, hours=2), lambda: world.land(events, "2024-01-03", marker=False))
    clock.at(t0 + dt.timedelta(days=1, hours=3), lambda: world.land(events, "2024-01-03"))
    clock.at(t0 + dt.timedelta(days=2, hours=5), lambda: world.land(events, "2024-01-04"))


@pytest.mark.slow
def test_three_days_publish_three_versions_with_one_retry_and_a_byte_equal_backfill(
    shop_world: World, redis_server: RedisServer, tmp_path: Path
) -> None:
    store = {"kind": "redis", "url": redis_server.url, "prefix": "daily"}
    cfg = load_daily(write_daily(shop_world, tmp_path, store=store))
    t0 = dt.datetime(2024, 1, 3, tzinfo=UTC)  # 01-02 has just ended
    clock = FakeClock(t0)
    _land_schedule(shop_world, tmp_path / "events", clock, t0)
    redis_server.stop()  # down at the first push; back one second later, inside the retry's backoff
    clock.at(t0 + dt.timedelta(seconds=1), redis_server.start)
    try:
        results = schedule(cfg, clock, until=DAYS[-1])
    finally:
        redis_server.start()

    assert [r.date for r in results] == DAYS
    assert all(r.ok for r in results), [e for r in results for e in r.entries if e.status != "ok"]
    stream = Path(cfg.work) / "models"
    published = versions(stream)
    assert len(published) == 3
    assert current(stream).path == published[-1]
    assert all(read_manifest(v)["gate"]["passed"] for v in published)

    history = read_history(cfg.work)
    failed = [e for e in history if e.status == "failed"]
    assert [(e.date, e.step, e.attempt) for e in failed] == [("2024-01-02", "push", 1)]
    assert [(e.date, e.step) for e in history if e.attempt == 2] == [("2024-01-02", "push")]
    assert [s for s in clock.slept if s != cfg.partitions.poll_s] == [
        cfg.retry.backoff_s
    ]  # one backoff, the rest polls
    assert len(history) == 3 * 7 + 1
    lines = (Path(cfg.work) / "history.jsonl").read_text().splitlines()
    assert all(set(json.loads(line)) == HISTORY_KEYS for line in lines)

    # Each later day warm-starts from the version published the day before; the first trains cold.
    starts = [json.loads((Path(cfg.work) / f"dates/{d}/done/train.json").read_text())["warm_start"] for d in DAYS]
    assert starts == [None, str(published[0]), str(published[1])]
    # Partitions that landed late were waited for on the fake clock, never in real time.
    assert clock.now() >= t0 + dt.timedelta(days=2, hours=5)
    window = json.loads((Path(cfg.work) / "dates/2024-01-03/window/window.json").read_text())
    assert window["dates"] == ["2024-01-02", "2024-01-03"]
    with redis_server.client() as client:
        assert len(client.keys("daily:user:*")) == 1_500

    first = Path(cfg.work) / "dates/2024-01-02/samples"
    before = {p.name: p.read_bytes() for p in sorted(first.glob("*.parquet"))}
    assert sorted(before) == ["test.parquet", "train.parquet", "valid.parquet"]
    rerun = backfill(cfg, DAYS[0], DAYS[0], clock, force=True)
    assert {p.name: p.read_bytes() for p in sorted(first.glob("*.parquet"))} == before
    status = {e.step: (e.status, e.error) for e in rerun[0].entries}
    assert status["samples"] == ("ok", None)
    assert status["publish"] == ("skipped", "model of the later date 2024-01-04 is live")
    assert versions(stream) == published  # an old date never replaces the live model
