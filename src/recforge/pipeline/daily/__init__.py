"""The daily pipeline behind `recforge pipeline ...`: per date wait -> samples -> train -> gate -> publish ->
recall -> push, each step idempotent (done markers), retried with backoff, recorded in WORK/history.jsonl."""

from recforge.pipeline.daily.airflow import render_dag
from recforge.pipeline.daily.clock import Clock, SystemClock
from recforge.pipeline.daily.history import Entry, read_history
from recforge.pipeline.daily.runner import DayResult, backfill, run_day, run_step
from recforge.pipeline.daily.schedule import schedule
from recforge.pipeline.daily.step import STEPS

__all__ = [
    "STEPS",
    "Clock",
    "DayResult",
    "Entry",
    "SystemClock",
    "backfill",
    "read_history",
    "render_dag",
    "run_day",
    "run_step",
    "schedule",
]
