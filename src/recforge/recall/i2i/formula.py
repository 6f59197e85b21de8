"""Formulas written once for every engine: plain Python over values that are SQL or numpy arrays.

A formula is a function of a mapping of named inputs. Called on `SQL_COLUMNS` (each name reads as that
column) it returns the SQL text DuckDB and Spark run; called on numpy arrays it returns the values, by the
same operations in the same order. Only `+ - * /`, `<`, `sqrt`, `abs`, `floor` and casts exist here: IEEE
rounds each of them the same way on every engine, so the engines agree to the last bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeAlias

import numpy as np

Value: TypeAlias = Any  # an `Sql` expression, a numpy array or a Python number
Formula: TypeAlias = Callable[[Mapping[str, Value]], Value]


def lit(value: float) -> str:
    """A double literal both DuckDB and Spark read as DOUBLE with exactly this value."""
    return format(value, ".17e")


class Sql:
    """A SQL expression; Python operators on it build larger ones, each binary operation in parentheses."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Sql({self.text!r})"

    def __add__(self, other: Value) -> Sql:
        return _binary(self, "+", other)

    def __radd__(self, other: Value) -> Sql:
        return _binary(other, "+", self)

    def __sub__(self, other: Value) -> Sql:
        return _binary(self, "-", other)

    def __rsub__(self, other: Value) -> Sql:
        return _binary(other, "-", self)

    def __mul__(self, other: Value) -> Sql:
        return _binary(self, "*", other)

    def __rmul__(self, other: Value) -> Sql:
        return _binary(other, "*", self)

    def __truediv__(self, other: Value) -> Sql:
        return _binary(self, "/", other)

    def __rtruediv__(self, other: Value) -> Sql:
        return _binary(other, "/", self)

    def __lt__(self, other: Value) -> Sql:
        return _binary(self, "<", other)


def sql(value: Value) -> str:
    """SQL text of an expression or a number (numbers become exact double literals)."""
    return value.text if isinstance(value, Sql) else lit(float(value))


def _binary(left: Value, op: str, right: Value) -> Sql:
    return Sql(f"({sql(left)} {op} {sql(right)})")


class SqlColumns(Mapping[str, Sql]):
    """Every name reads as the SQL column of that name; `read` records the names a formula asked for."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def __getitem__(self, name: str) -> Sql:
        self.read.append(name)
        return Sql(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def to_sql(formula: Formula) -> str:
    """The SQL of `formula` over columns named like its inputs."""
    return sql(formula(SqlColumns()))


def reads(formula: Formula) -> set[str]:
    """The names `formula` reads."""
    columns = SqlColumns()
    formula(columns)
    return set(columns.read)


class Derived(Mapping[str, Value]):
    """`base` plus named values computed from it by formulas on first read (then kept).

    Formulas read inputs and intermediate results alike; nothing is computed that no formula reads.
    """

    def __init__(self, base: Mapping[str, Value], **formulas: Formula) -> None:
        self._base = base
        self._formulas = formulas
        self._done: dict[str, Value] = {}

    def __getitem__(self, name: str) -> Value:
        if name not in self._formulas:
            return self._base[name]
        if name not in self._done:
            self._done[name] = self._formulas[name](self._base)
        return self._done[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._base
        yield from (name for name in self._formulas if name not in self._base)

    def __len__(self) -> int:
        return len(set(self._base) | set(self._formulas))


def sqrt(x: Value) -> Value:
    return Sql(f"sqrt({sql(x)})") if isinstance(x, Sql) else np.sqrt(x)


def fabs(x: Value) -> Value:
    return Sql(f"abs({sql(x)})") if isinstance(x, Sql) else np.abs(x)


def floor(x: Value) -> Value:
    """Rounds down; Spark's floor returns BIGINT, so only apply it where the result fits an int64."""
    return Sql(f"floor({sql(x)})") if isinstance(x, Sql) else np.floor(x)


def to_double(x: Value) -> Value:
    return Sql(f"CAST({sql(x)} AS DOUBLE)") if isinstance(x, Sql) else np.asarray(x, dtype=np.float64)


def to_bigint(x: Value) -> Value:
    """An integral double as an integer."""
    return Sql(f"CAST({sql(x)} AS BIGINT)") if isinstance(x, Sql) else np.asarray(x).astype(np.int64)


def if_else(condition: Value, then: Value, otherwise: Value) -> Value:
    if isinstance(condition, Sql):
        return Sql(f"CASE WHEN {sql(condition)} THEN {sql(then)} ELSE {sql(otherwise)} END")
    return np.where(condition, then, otherwise)


def fixed(x: Value, bits: int) -> Value:
    """`x` rounded to the nearest multiple of 2^-bits, as an integer (scaling by 2^bits is exact)."""
    return to_bigint(floor(x * 2.0**bits + 0.5))


def unfixed(x: Value, bits: int) -> Value:
    """A fixed-point sum back as a double (exact division by a power of two)."""
    return to_double(x) / 2.0**bits


SCORE_DECIMALS = 12
SCORE_GUARD = 1e6  # s * 1e12 must fit an int64 (Spark's floor returns one); larger scores stay unrounded
_SCALE = 10.0**SCORE_DECIMALS


def round_score(s: Value) -> Value:
    """`s` rounded to SCORE_DECIMALS places, so scores equal in exact arithmetic tie (then rank by id)."""
    return if_else(s < SCORE_GUARD, floor(s * _SCALE + 0.5) / _SCALE, s)
