"""What the sample plan needs from an engine: run SQL, name a query's result, and describe columns.

`DuckSql` is DuckDB over Arrow tables in this process; `recforge.data.spark_sql.SparkSql` is Spark.
The plan (`sample_plan.py`) writes every query once and runs it through this interface on either.
"""

from __future__ import annotations

from typing import Any, Protocol

import duckdb
import pyarrow as pa

from recforge.data.duck import fetch_arrow
from recforge.data.sql_dialect import DIALECTS, Dialect, arrow_kind


class SqlEngine(Protocol):
    """An engine the sample plan runs on (tables are referred to by the names given to `create`)."""

    dialect: Dialect
    errors: tuple[type[BaseException], ...]

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The (small) result of `sql` as tuples."""
        ...

    def create(self, name: str, sql: str, keep: bool = False) -> None:
        """Make `name` refer to the result of `sql`; `keep`: compute it once (it is read several times)."""
        ...

    def empty(self, relation: str) -> pa.Table:
        """`relation` without its rows: its Arrow schema, to test an expression on another engine."""
        ...

    def columns(self, sql: str) -> dict[str, tuple[str, str]]:
        """Each output column of `sql`: (kind as in `splits.arrow_kind`, the engine's own type name)."""
        ...


class DuckSql:
    """DuckDB without file access (rule SQL may not touch files) over registered Arrow tables."""

    dialect = DIALECTS.get("duckdb")
    errors: tuple[type[BaseException], ...] = (duckdb.Error,)

    def __init__(self) -> None:
        self.con = duckdb.connect(config={"enable_external_access": False})

    def register(self, name: str, table: pa.Table) -> None:
        self.con.register(name, table)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.con.execute(sql).fetchall()

    def create(self, name: str, sql: str, keep: bool = False) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP {'TABLE' if keep else 'VIEW'} {name} AS {sql}")

    def empty(self, relation: str) -> pa.Table:
        return fetch_arrow(self.con, f"SELECT * FROM {relation} LIMIT 0")

    def columns(self, sql: str) -> dict[str, tuple[str, str]]:
        schema = fetch_arrow(self.con, f"SELECT * FROM ({sql}) q LIMIT 0").schema
        described = self.con.execute(f"DESCRIBE {sql}").fetchall()
        return {row[0]: (arrow_kind(schema.field(row[0]).type), str(row[1])) for row in described}

    def close(self) -> None:
        self.con.close()


def duckdb_accepts(expr: str, table: pa.Table) -> bool:
    """Does DuckDB evaluate `expr` over a relation shaped like `table` (registered as `rows`)?"""
    engine = DuckSql()
    try:
        engine.register("rows", table)
        engine.columns(f"SELECT ({expr}) AS x FROM rows")
        return True
    except duckdb.Error:
        return False
    finally:
        engine.close()
