"""Progress off a terminal: log lines at the start, every RECFORGE_PROGRESS_EVERY seconds, and at the end."""

from __future__ import annotations

import logging
import time

import pytest

from recforge.progress import track


def test_off_a_terminal_a_stage_logs_start_heartbeats_and_end(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECFORGE_PROGRESS_EVERY", "0.2")
    with caplog.at_level(logging.INFO, logger="recforge.progress"):
        for _ in track(range(3), "demo", unit="steps"):
            time.sleep(0.25)
    lines = [r.getMessage() for r in caplog.records if r.name == "recforge.progress"]
    assert lines[0] == "demo: started" and lines[-1].startswith("demo: done, 3/3 steps in ")
    assert any(line.startswith("demo: ") and "/3 steps (" in line for line in lines[1:-1])


def test_a_bad_interval_falls_back_to_five_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    from recforge.progress import every_seconds

    monkeypatch.setenv("RECFORGE_PROGRESS_EVERY", "soon")
    assert every_seconds() == 5.0
