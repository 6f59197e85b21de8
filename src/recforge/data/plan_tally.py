"""The sample plan's row checks and counts, gathered and run as one aggregation query.

Each check (unmatched joins, the label rule's drops and NULLs, 0/1 labels, regression targets, positives)
used to run its own query over the joined rows: on Spark a job each, with its scheduling cost and a scan of
the rows. A `Tally` collects their aggregate expressions over one relation, runs them in one query, and
hands each check its values in the order the checks were added, so the first failing check still raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recforge.data.sql_engine import SqlEngine

Check = Callable[[tuple[Any, ...]], None]


class Tally:
    """Aggregate expressions of several checks over one relation, and what each check does with its values."""

    def __init__(self) -> None:
        self.expressions: list[str] = []
        self.checks: list[tuple[slice, Check]] = []

    def add(self, expressions: list[str], check: Check) -> None:
        """`check` gets the values of `expressions` (aggregates over the relation) once `run` has them."""
        start = len(self.expressions)
        self.expressions += expressions
        self.checks.append((slice(start, len(self.expressions)), check))

    def run(self, engine: SqlEngine, relation: str) -> None:
        """One query for every expression, then every check in the order added."""
        if not self.expressions:
            return
        values = engine.rows(f"SELECT {', '.join(self.expressions)} FROM {relation}")[0]
        for part, check in self.checks:
            check(tuple(values[part]))
        self.expressions, self.checks = [], []
