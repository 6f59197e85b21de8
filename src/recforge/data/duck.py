"""Small DuckDB helpers shared by every module that runs SQL over Arrow tables."""

from __future__ import annotations

import duckdb
import pyarrow as pa


def quote(name: str) -> str:
    """A quoted DuckDB identifier (column names may hold spaces or quotes)."""
    return '"' + name.replace('"', '""') + '"'


def fetch_arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """The result of `sql` as an Arrow table, across DuckDB versions (< 1.4 has only `.arrow()`)."""
    relation = con.sql(sql)
    to_arrow = getattr(relation, "to_arrow_table", None) or relation.arrow
    return to_arrow()
