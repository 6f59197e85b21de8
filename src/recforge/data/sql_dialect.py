"""The few SQL spellings where DuckDB and Spark differ, so the sample plan writes every query once.

Everything else the plan emits (window functions, `md5`, `concat_ws`, `coalesce`, `CAST(x AS STRING)`,
`count(*) FILTER (WHERE ...)`) reads the same on both engines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from recforge.registry import Registry

# Column kinds the split hash reads as text identically on both engines (floats print differently: excluded)
HASHED_KINDS = ("integer", "string", "boolean", "date", "timestamp")


@dataclass(frozen=True)
class Dialect:
    """How one engine quotes a name and turns a timestamp into integer microseconds since 1970 (UTC)."""

    name: str  # as users know it, for error messages
    quote: Callable[[str], str]
    epoch_micros: Callable[[str], str]


DIALECTS: Registry[Dialect] = Registry("sql dialect")
DIALECTS.register("duckdb")(Dialect("DuckDB", lambda n: '"' + n.replace('"', '""') + '"', lambda c: f"epoch_us({c})"))
DIALECTS.register("spark")(Dialect("Spark", lambda n: "`" + n.replace("`", "``") + "`", lambda c: f"unix_micros({c})"))


def as_text(dialect: Dialect, column: str, kind: str) -> str:
    """`column` (of a HASHED_KINDS kind) as the same text on every engine; NULL becomes `~null~`."""
    quoted = dialect.quote(column)
    value = dialect.epoch_micros(quoted) if kind == "timestamp" else quoted
    return f"coalesce(CAST({value} AS STRING), '~null~')"


def arrow_kind(kind: pa.DataType) -> str:
    """The engine-neutral kind of an Arrow column type (see `sql_dialect.HASHED_KINDS`)."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    checks = (
        ("boolean", pa.types.is_boolean),
        ("integer", pa.types.is_integer),
        ("float", pa.types.is_floating),
        ("string", lambda k: pa.types.is_string(k) or pa.types.is_large_string(k)),
        ("date", pa.types.is_date),
        ("timestamp", pa.types.is_timestamp),
    )
    return next((name for name, check in checks if check(kind)), "other")
