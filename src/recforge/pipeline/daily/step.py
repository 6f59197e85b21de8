"""What a daily step is: a function of the date's context, registered by name with the outputs it owns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recforge.config.daily import DailyConfig
from recforge.errors import RecforgeError
from recforge.pipeline.daily.clock import Clock
from recforge.pipeline.daily.layout import DayLayout
from recforge.registry import Registry


@dataclass(frozen=True)
class DayRun:
    """What a step gets: the daily config, the date, the clock it waits on, and the date's paths."""

    cfg: DailyConfig
    date: dt.date
    clock: Clock

    @property
    def layout(self) -> DayLayout:
        return DayLayout.of(self.cfg, self.date)


class Skip(Exception):
    """Raised by a step that has nothing to do for this date; the reason goes to the history."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GateRejected(RecforgeError):
    """The gate judged the date's model unfit to serve: a verdict, so it is not retried."""


StepFn = Callable[[DayRun], dict[str, Any]]


@dataclass(frozen=True)
class Step:
    """`run` returns what its done marker records; `outputs` (under dates/DATE/) are cleared by --force."""

    run: StepFn
    outputs: tuple[str, ...] = ()


STEPS: Registry[Step] = Registry("daily pipeline step")


def step(name: str, *outputs: str) -> Callable[[StepFn], StepFn]:
    """Register a step function under `name`, owning `outputs` (names under dates/DATE/)."""

    def add(fn: StepFn) -> StepFn:
        STEPS.register(name)(Step(fn, outputs))
        return fn

    return add
