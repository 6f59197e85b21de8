"""Read one `data.tables.*` file as its config describes it: header or given names, delimiter, bad lines
skipped and counted (up to `max_bad_fraction`), then the `derive:` columns computed in DuckDB."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import duckdb
import pyarrow as pa

from recforge.config.tables import TableFile
from recforge.data.duck import fetch_arrow
from recforge.data.readers import CsvOptions, csv_options_for, is_delimited, read_table
from recforge.errors import ConfigError, DataError

log = logging.getLogger(__name__)


class BadLines:
    """pyarrow's invalid-row handler for bad_lines=skip: counts the skipped lines and keeps the first."""

    def __init__(self) -> None:
        self.count = 0
        self.first: str | None = None

    def __call__(self, row: Any) -> str:
        self.count += 1
        if self.first is None:
            self.first = f"line {row.number}: {row.text!r}" if row.number is not None else repr(row.text)
        return "skip"


def csv_options(spec: TableFile, yaml_path: str, bad: BadLines | None) -> CsvOptions:
    """CsvOptions for `spec`: given column names (skipping a header line when `header: true`), delimiter."""
    base = csv_options_for(spec.path)
    if spec.delimiter is not None:
        base = dataclasses.replace(base, delimiter=spec.delimiter)
    names = spec.columns
    if names is None and not spec.has_header:
        raise ConfigError(f"{yaml_path}.columns", "a file without a header needs column names", fix="list `columns:`")
    return dataclasses.replace(
        base, column_names=names, skip_rows=1 if names and spec.has_header else 0, on_bad_line=bad
    )


def read_table_file(spec: TableFile, yaml_path: str) -> tuple[pa.Table, dict[str, int]]:
    """The table and its counts (`lines`, `bad_lines`); `yaml_path` (e.g. `data.tables.behavior`) names errors."""
    if not is_delimited(spec.path):
        _refuse_csv_options(spec, yaml_path)
        table = read_table(spec.path)
        return derive(table, spec.derive, spec.path, yaml_path), {"lines": table.num_rows, "bad_lines": 0}
    bad = BadLines() if spec.bad_lines == "skip" else None
    table = read_table(spec.path, csv=csv_options(spec, yaml_path, bad))
    skipped = bad.count if bad else 0
    counts = {"lines": table.num_rows + skipped, "bad_lines": skipped}
    if bad is not None and skipped:
        share = skipped / counts["lines"]
        if share > spec.max_bad_fraction:
            raise DataError(
                f"{spec.path}: {skipped:,} of {counts['lines']:,} lines ({share:.2%}) have the wrong number of fields, "
                f"more than `{yaml_path}.max_bad_fraction: {spec.max_bad_fraction}` (first: {bad.first})"
                "\n  fix: check the delimiter and `columns`, or raise max_bad_fraction"
            )
        log.warning("%s: skipped %s bad line(s) of %s (first: %s)", spec.path, skipped, counts["lines"], bad.first)
    return derive(table, spec.derive, spec.path, yaml_path), counts


def _refuse_csv_options(spec: TableFile, yaml_path: str) -> None:
    for key in ("columns", "header", "delimiter"):
        if getattr(spec, key) is not None:
            raise ConfigError(
                f"{yaml_path}.{key}", f"{spec.path} is Parquet, which names its own columns", fix="remove it"
            )


def derive(table: pa.Table, exprs: dict[str, str], origin: str, yaml_path: str) -> pa.Table:
    """`table` plus one column per `name: SQL expression` (in order, so a later one may use an earlier one)."""
    if not exprs:
        return table
    con = duckdb.connect(config={"enable_external_access": False})  # derive SQL may not touch files
    try:
        con.register("source", table)
        for name, expr in exprs.items():
            try:  # only the new column comes back from DuckDB, so the others keep their Arrow types
                column = fetch_arrow(con, f"SELECT ({expr}) AS x FROM source")["x"]
            except duckdb.Error as exc:
                raise ConfigError(
                    f"{yaml_path}.derive.{name}",
                    f"DuckDB cannot evaluate {expr!r} over {origin}: {str(exc).splitlines()[0]}",
                    fix=f"write a SQL expression over the columns {table.column_names} (TRY_CAST gives NULL "
                    "where CAST fails)",
                ) from None
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, column)
            else:
                table = table.append_column(name, column)
            con.unregister("source")
            con.register("source", table)
    finally:
        con.close()
    log.info("%s: derived %s", origin, list(exprs))
    return table
