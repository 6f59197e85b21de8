"""`data.tables`: a warehouse-style source's files and how to parse each (headers, bad lines, derived columns)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from recforge.config.features import Strict


class TableFile(Strict):
    """One table file. A plain string in the YAML is its `path` with the defaults below.

    The parse options apply to delimited text (CSV/TSV/...); `derive` applies to any format.
    """

    path: str = Field(description="Parquet/CSV file or directory, local path or fsspec URL.")
    columns: list[str] | None = Field(
        None, min_length=1, description="Column names for a headerless file (or to rename a headed one)."
    )
    header: bool | None = Field(
        None, description="Does the first line name the columns? Default: true, false when `columns` is given."
    )
    delimiter: str | None = Field(
        None, min_length=1, max_length=1, description="Field separator; default from the suffix or sniffed."
    )
    bad_lines: Literal["error", "skip"] = Field(
        "error", description="Lines with the wrong number of fields: stop the run, or skip and count them."
    )
    max_bad_fraction: float = Field(
        0.01, ge=0, le=1, description="bad_lines=skip: stop when more than this share of lines is bad."
    )
    derive: dict[str, str] = Field(
        default_factory=dict,
        description="New columns as DuckDB SQL expressions over this table's columns, evaluated before label "
        "rules, e.g. `year: \"CAST(regexp_extract(title, '\\((\\d{4})\\)', 1) AS INTEGER)\"`.",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_path(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @property
    def has_header(self) -> bool:
        return self.header if self.header is not None else self.columns is None


class CatalogTable(Strict):
    """A table of Spark's catalog (a Hive metastore's, say), read by `engine: spark` with a partition filter."""

    table: str = Field(pattern=r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)?$", description="`db.table` or `table`.")
    partitions: str | None = Field(
        None,
        description="Spark SQL filter on partition columns, e.g. `ds = '{date}'`; `{date}` is `data.date`.",
    )


TableSpec = TableFile | CatalogTable


class TablesConfig(Strict):
    """Raw warehouse-style tables: a behavior log joined with user and item tables."""

    behavior: TableSpec
    users: TableSpec | None = None
    items: TableSpec | None = None
    user_key: str = "user_id"
    item_key: str = "item_id"
