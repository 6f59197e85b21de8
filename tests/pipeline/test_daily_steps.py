"""The daily runner without training: retries and backoff, final errors, done markers, skips, the wait step's
timeout, the history format and DAILY.yaml's errors."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daily_world import FakeClock, World, write_daily

from recforge.config.daily import STEP_NAMES, DailyConfig, RetryConfig, load_daily
from recforge.errors import ConfigError, DataError
from recforge.pipeline.daily import STEPS, read_history, run_step
from recforge.pipeline.daily.runner import backoff_s, check_daily, run_day
from recforge.pipeline.daily.schedule import first_date, schedule
from recforge.pipeline.daily.step import DayRun, Skip, step

DATE = dt.date(2024, 1, 2)
T0 = dt.datetime(2024, 1, 3, tzinfo=dt.timezone.utc)


@pytest.fixture
def cfg(shop_world: World, tmp_path: Path) -> DailyConfig:
    return load_daily(write_daily(shop_world, tmp_path, retry={"attempts": 3, "backoff_s": 10, "factor": 3}))


@pytest.fixture
def flaky() -> Iterator[list[Exception]]:
    """A step `flaky` that raises the queued errors one per attempt, then succeeds."""
    errors: list[Exception] = []

    def run(day: DayRun) -> dict[str, Any]:
        if errors:
            raise errors.pop(0)
        return {"ran_for": day.date.isoformat()}

    step("flaky", "flaky-out")(run)
    yield errors
    STEPS.unregister("flaky")


def test_every_step_of_daily_yaml_is_registered() -> None:
    assert STEPS.names() == sorted(STEP_NAMES)


def test_backoff_grows_by_factor_up_to_the_cap() -> None:
    retry = RetryConfig(attempts=5, backoff_s=30, factor=2, max_backoff_s=100)
    assert [backoff_s(retry, n) for n in (1, 2, 3, 4)] == [30.0, 60.0, 100.0, 100.0]


def test_a_failing_step_is_retried_with_backoff_and_then_marked_done(cfg: DailyConfig, flaky: list[Exception]) -> None:
    flaky += [OSError("disk hiccup"), RuntimeError("again")]
    clock = FakeClock(T0)
    entries = run_step(cfg, "flaky", DATE, clock)
    assert [(e.status, e.attempt) for e in entries] == [("failed", 1), ("failed", 2), ("ok", 3)]
    assert entries[0].error == "OSError: disk hiccup"
    assert clock.slept == [10.0, 30.0]
    assert entries[1].finished == "2024-01-03T00:00:10+00:00"  # times come from the clock
    done = json.loads((Path(cfg.work) / "dates/2024-01-02/done/flaky.json").read_text())
    assert (done["ran_for"], done["attempt"]) == ("2024-01-02", 3)

    again = run_step(cfg, "flaky", DATE, clock)  # idempotent: done for this date
    assert [(e.status, e.attempt) for e in again] == [("skipped", 0)]
    assert again[0].error is not None and again[0].error.startswith("done at 2024-01-03T00:00:40")
    assert [e.step for e in read_history(cfg.work)] == ["flaky"] * 4


def test_force_clears_the_marker_and_outputs(cfg: DailyConfig, flaky: list[Exception]) -> None:
    clock = FakeClock(T0)
    run_step(cfg, "flaky", DATE, clock)
    output = Path(cfg.work) / "dates/2024-01-02/flaky-out"
    output.mkdir()
    entries = run_step(cfg, "flaky", DATE, clock, force=True)
    assert [(e.status, e.attempt) for e in entries] == [("ok", 1)]
    assert not output.exists()


def test_config_errors_are_not_retried_and_attempts_run_out(cfg: DailyConfig, flaky: list[Exception]) -> None:
    clock = FakeClock(T0)
    flaky.append(ConfigError("data.label", "no such column", fix="name the label"))
    entries = run_step(cfg, "flaky", DATE, clock)
    assert [(e.status, e.attempt) for e in entries] == [("failed", 1)]
    assert entries[0].error == "data.label: no such column\n  fix: name the label"
    assert clock.slept == []
    flaky += [DataError("a"), DataError("b"), DataError("c")]
    entries = run_step(cfg, "flaky", dt.date(2024, 1, 3), clock)
    assert [(e.status, e.error) for e in entries] == [("failed", "a"), ("failed", "b"), ("failed", "c")]
    assert not (Path(cfg.work) / "dates/2024-01-03/done/flaky.json").exists()


def test_a_skip_is_recorded_with_its_reason(cfg: DailyConfig) -> None:
    def nothing(day: DayRun) -> dict[str, Any]:
        raise Skip("nothing to do")

    step("nothing")(nothing)
    try:
        entries = run_step(cfg, "nothing", DATE, FakeClock(T0))
    finally:
        STEPS.unregister("nothing")
    assert [(e.status, e.error) for e in entries] == [("skipped", "nothing to do")]


def test_wait_times_out_once_without_retry_and_the_day_stops(cfg: DailyConfig) -> None:
    clock = FakeClock(T0)
    result = run_day(cfg, DATE, clock)  # no partition ever lands
    assert not result.ok
    assert [(e.step, e.status, e.attempt) for e in result.entries] == [("wait", "failed", 1)] + [
        (s, "skipped", 0) for s in STEP_NAMES[1:]
    ]
    assert "events/dt=2024-01-02/_SUCCESS did not appear within 21600 s" in str(result.entries[0].error)
    assert sum(clock.slept) == 6 * 3600
    assert result.entries[1].error == "step 'wait' failed"


def test_wait_needs_the_marker_not_just_the_rows(shop_world: World, cfg: DailyConfig) -> None:
    events = Path(cfg.partitions.path).parents[0]
    clock = FakeClock(T0)
    shop_world.land(events, "2024-01-02", marker=False)
    clock.at(T0 + dt.timedelta(minutes=25), lambda: shop_world.land(events, "2024-01-02"))
    entries = run_step(cfg, "wait", DATE, clock)
    assert [(e.status, e.attempt) for e in entries] == [("ok", 1)]
    assert clock.slept == [600, 600, 600]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"partitions": {"path": "events/latest"}}, "partitions.path: '"),
        ({"steps": ["train", "wait"]}, "steps: ['train', 'wait'] is out of order"),
        ({"steps": ["wait", "deploy"]}, "steps[1]: Input should be 'wait', 'samples'"),
        ({"retry": {"attempts": 0}}, "retry.attempts: Input should be greater than or equal to 1"),
        ({"steps": ["wait", "train"]}, "steps: 'train' reads what 'samples' writes\n  fix: add 'samples'"),
        ({"windows_days": 3}, "windows_days: unknown key 'windows_days' (did you mean 'window_days'?)"),
    ],
)
def test_bad_daily_yaml_names_the_key(shop_world: World, tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_daily(write_daily(shop_world, tmp_path, **change))
    assert message in str(err.value)
    assert "daily.yaml" in str(err.value)


def test_relative_paths_resolve_against_daily_yaml(shop_world: World, tmp_path: Path) -> None:
    cfg = load_daily(write_daily(shop_world, tmp_path / "a"))
    assert (cfg.work, cfg.partitions.path) == (str(tmp_path / "a/work"), str(tmp_path / "a/events/dt={date}"))
    assert cfg.stream_dir == tmp_path / "a/work/models"


def test_history_lines_have_the_ui_fields(cfg: DailyConfig, flaky: list[Exception]) -> None:
    flaky.append(OSError("x"))
    run_step(cfg, "flaky", DATE, FakeClock(T0))
    rows = [json.loads(line) for line in (Path(cfg.work) / "history.jsonl").read_text().splitlines()]
    first = {"date": "2024-01-02", "step": "flaky", "status": "failed", "attempt": 1}
    second = {"date": "2024-01-02", "step": "flaky", "status": "ok", "attempt": 2}
    assert rows == [
        {
            **first,
            "started": "2024-01-03T00:00:00+00:00",
            "finished": "2024-01-03T00:00:00+00:00",
            "error": "OSError: x",
        },
        {**second, "started": "2024-01-03T00:00:10+00:00", "finished": "2024-01-03T00:00:10+00:00", "error": None},
    ]


def test_schedule_once_stops_at_the_first_date_not_ready(cfg: DailyConfig) -> None:
    clock = FakeClock(T0)
    assert schedule(cfg, clock, once=True) == []
    assert clock.slept == []


def test_schedule_starts_after_the_history_else_at_start(
    shop_world: World, tmp_path: Path, flaky: list[Exception]
) -> None:
    cfg = load_daily(write_daily(shop_world, tmp_path, start=None))
    with pytest.raises(ConfigError, match="start: no date to start from: the history is empty"):
        first_date(cfg, None)
    run_step(cfg, "flaky", DATE, FakeClock(T0))
    assert first_date(cfg, None) == dt.date(2024, 1, 3)
    assert first_date(cfg, dt.date(2023, 12, 1)) == dt.date(2023, 12, 1)


def test_the_pipeline_yaml_is_checked_before_any_step(shop_world: World, tmp_path: Path) -> None:
    cfg = load_daily(write_daily(shop_world, tmp_path, overrides=["data.source=synthetic"]))
    with pytest.raises(ConfigError, match=r"data\.source: the daily pipeline feeds date partitions"):
        check_daily(cfg)
    cfg = load_daily(write_daily(shop_world, tmp_path, overrides=["model.name=deepfmm"]))
    with pytest.raises(ConfigError, match="unknown model 'deepfmm'"):
        check_daily(cfg)
    assert not Path(cfg.work).exists()
