"""Train/valid/test assignment of sample rows: one SQL query that DuckDB and Spark both run.

Every row's side comes from a keyed hash, `md5` of the seed and the row's hashed columns as text, never
from a random stream, so a row lands on the same side on every engine, machine and partitioning.
Hashed columns: every integer, string, boolean, date and timestamp column of the rows (sorted by name;
floats print differently on the two engines and internal `__` columns are engine-specific, so both are
left out). `split_query` writes the query; `assign_splits` runs it in DuckDB over an Arrow table and
returns one code per row: 0 = train, 1 = valid, 2 = test.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recforge.config.schema import SplitConfig
from recforge.data.duck import fetch_arrow
from recforge.data.sql_dialect import DIALECTS, HASHED_KINDS, Dialect, arrow_kind, as_text
from recforge.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
TRAIN, VALID, TEST = 0, 1, 2
SPLIT = "__split"  # the code column `split_query` adds
HASH = "__hash"
HEX_DIGITS = 15  # the hash prefix that ratio thresholds compare (60 bits)


def ratios(cfg: SplitConfig) -> np.ndarray:
    """Split ratios normalized to sum 1 (so 8:1:1 and 0.8/0.1/0.1 mean the same)."""
    r = np.asarray(cfg.ratios, dtype=float)
    if (r < 0).any() or r.sum() <= 0 or r[0] <= 0:
        raise ConfigError("data.split.ratios", f"got {list(cfg.ratios)}", fix="use non-negative ratios with train > 0")
    return r / r.sum()


def expected_splits(cfg: SplitConfig) -> tuple[bool, bool, bool]:
    """Which splits this config is meant to produce (a zero ratio or an unset date means none)."""
    if cfg.method == "by_date":
        return True, cfg.valid_from is not None, cfg.test_from is not None
    if cfg.method == "leave_last":
        return True, True, True
    r = ratios(cfg)
    return True, bool(r[1] > 0), bool(r[2] > 0)


def required_columns(cfg: SplitConfig) -> dict[str, str]:
    """Columns the method reads, each with the YAML path that names it; they must exist without nulls."""
    needs = {
        "random": {},
        "per_user": {cfg.user_column: "data.split.user_column"},
        "leave_last": {cfg.user_column: "data.split.user_column", cfg.time_column: "data.split.time_column"},
        "by_date": {cfg.time_column: "data.split.time_column"},
    }
    return needs[cfg.method]


def _hash(cfg: SplitConfig, kinds: dict[str, str], dialect: Dialect) -> str:
    if cfg.key_columns is not None:
        bad = [name for name in cfg.key_columns if kinds.get(name) not in HASHED_KINDS]
        if bad:
            raise DataError(
                f"data.split.key_columns {bad} are not integer, string, boolean, date or timestamp columns of the rows"
                f" (columns: {sorted(name for name in kinds if not name.startswith('__'))})"
                "\n  fix: name the log's identity columns, e.g. [user_id, item_id, timestamp]"
            )
        hashed = sorted(cfg.key_columns)
    else:
        hashed = sorted(name for name, kind in kinds.items() if kind in HASHED_KINDS and not name.startswith("__"))
    if not hashed:
        raise DataError(
            f"the split has no integer, string, date or timestamp column to key its hash (columns: {sorted(kinds)})"
            "\n  fix: add an id or time column to the rows"
        )
    texts = ", ".join(as_text(dialect, name, kinds[name]) for name in hashed)
    return f"md5(concat_ws('|', '{cfg.seed}', {texts}))"


def _threshold(share: float) -> str:
    """A hex string that hashes compare below with probability `share` (their first HEX_DIGITS digits)."""
    if share >= 1:
        return "g"  # above every hex digit
    return format(int(share * 16**HEX_DIGITS), f"0{HEX_DIGITS}x")


def _double(value: float) -> str:
    """A float literal both engines read as the same IEEE double (a bare 0.8 is DECIMAL in SQL)."""
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def _cases(train: str, valid: str) -> str:
    return f"CASE WHEN {train} THEN {TRAIN} WHEN {valid} THEN {VALID} ELSE {TEST} END"


def _random(cfg: SplitConfig, kinds: dict[str, str], dialect: Dialect) -> tuple[str, str]:
    """Each row by its hash: train below ratio[0], valid below ratio[0] + ratio[1] (sizes follow the ratios)."""
    r = ratios(cfg)
    return "", _cases(f"{HASH} < '{_threshold(r[0])}'", f"{HASH} < '{_threshold(r[0] + r[1])}'")


def _per_user(cfg: SplitConfig, kinds: dict[str, str], dialect: Dialect) -> tuple[str, str]:
    """Each user's rows ordered by hash and cut by the ratios (a 1-row user lands in train)."""
    r = ratios(cfg)
    user = dialect.quote(cfg.user_column)
    windows = (
        f"count(*) OVER (PARTITION BY {user}) AS __n, "
        f"row_number() OVER (PARTITION BY {user} ORDER BY {HASH}) - 1 AS __rank"
    )
    if cfg.holdout_rounding == "floor":  # RecBole: valid and test floor(n * ratio) rows, train the rest
        cut_valid = f"__n - floor(__n * {_double(r[2])})"
        cut_train = f"{cut_valid} - floor(__n * {_double(r[1])})"
    else:
        cut_train = f"floor(__n * {_double(r[0])} + 0.5)"
        cut_valid = f"floor(__n * {_double(r[0] + r[1])} + 0.5)"
    return windows, _cases(f"__rank < {cut_train}", f"__rank < {cut_valid}")


def _leave_last(cfg: SplitConfig, kinds: dict[str, str], dialect: Dialect) -> tuple[str, str]:
    """Per user by time (ties by hash): last row -> test, second last -> valid (users with >= 3 rows).

    A user with 2 rows gives its last to test, a user with 1 row stays in train.
    """
    _time_kind(cfg, kinds)
    user, time = dialect.quote(cfg.user_column), dialect.quote(cfg.time_column)
    windows = (
        f"count(*) OVER (PARTITION BY {user}) AS __n, "
        f"row_number() OVER (PARTITION BY {user} ORDER BY {time} DESC, {HASH} DESC) - 1 AS __rank"
    )
    return windows, (
        f"CASE WHEN __n = 1 THEN {TRAIN} WHEN __rank = 0 THEN {TEST} "
        f"WHEN __rank = 1 AND __n >= 3 THEN {VALID} ELSE {TRAIN} END"
    )


def _time_kind(cfg: SplitConfig, kinds: dict[str, str]) -> str:
    kind = kinds[cfg.time_column]
    if kind not in ("integer", "float", "date", "timestamp"):
        raise DataError(
            f"column {cfg.time_column!r} is {kind}, the split needs unix seconds or a date/timestamp"
            "\n  fix: convert it, or point `data.split.time_column` at another column"
        )
    return kind


def _by_date(cfg: SplitConfig, kinds: dict[str, str], dialect: Dialect) -> tuple[str, str]:
    """Rows at or after `test_from` -> test, at or after `valid_from` -> valid, earlier -> train."""
    if cfg.valid_from is None and cfg.test_from is None:
        raise ConfigError("data.split", "method by_date needs `valid_from` and/or `test_from`", fix="set the dates")
    kind = _time_kind(cfg, kinds)
    valid_from = parse_when(cfg.valid_from, "data.split.valid_from") if cfg.valid_from else None
    test_from = parse_when(cfg.test_from, "data.split.test_from") if cfg.test_from else None
    if valid_from is not None and test_from is not None and valid_from > test_from:
        raise ConfigError("data.split.valid_from", f"{cfg.valid_from} is after test_from {cfg.test_from}")
    time = dialect.quote(cfg.time_column)
    if kind in ("date", "timestamp"):
        time = dialect.epoch_micros(f"CAST({time} AS TIMESTAMP)" if kind == "date" else time)

    def since(seconds: float | None) -> str:
        if seconds is None:
            return "FALSE"
        return f"{time} >= {int(seconds * 1_000_000)}" if kind in ("date", "timestamp") else f"{time} >= {seconds!r}"

    return "", f"CASE WHEN {since(test_from)} THEN {TEST} WHEN {since(valid_from)} THEN {VALID} ELSE {TRAIN} END"


METHODS = {"random": _random, "per_user": _per_user, "leave_last": _leave_last, "by_date": _by_date}


def split_query(cfg: SplitConfig, kinds: dict[str, str], source: str, dialect: Dialect) -> str:
    """SQL selecting every column of `source` plus SPLIT (and engine-internal `__` helper columns).

    `kinds` maps each column of `source` to its `arrow_kind`-style kind.
    """
    windows, case = METHODS[cfg.method](cfg, kinds, dialect)
    inner = f"SELECT *, {_hash(cfg, kinds, dialect)} AS {HASH} FROM {source}"
    if windows:
        inner = f"SELECT *, {windows} FROM ({inner}) hashed"
    return f"SELECT *, CAST({case} AS INT) AS {SPLIT} FROM ({inner}) ranked"


def assign_splits(table: pa.Table, cfg: SplitConfig, origin: str = "samples") -> np.ndarray:
    """int8 split code per row of `table` by `cfg.method`, computed in DuckDB; `origin` names the data in errors."""
    for name, yaml_path in required_columns(cfg).items():
        _column(table, name, origin, yaml_path)
    if cfg.time_column in required_columns(cfg):
        _warn_milliseconds(table[cfg.time_column], cfg.time_column, origin)
    kinds = {field.name: arrow_kind(field.type) for field in table.schema}
    rows = table.select([name for name in table.column_names if kinds[name] != "other"])
    rows = rows.append_column("__pos", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    try:
        query = split_query(cfg, {**kinds, "__pos": "integer"}, "split_rows", DIALECTS.get("duckdb"))
    except DataError as exc:
        raise DataError(f"{origin}: {exc}") from None
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        con.register("split_rows", rows)
        result = fetch_arrow(con, f"SELECT {SPLIT} FROM ({query}) q ORDER BY __pos")
    finally:
        con.close()
    codes = np.asarray(result[SPLIT].to_numpy(), dtype=np.int8)
    log.info("split %s: %s", cfg.method, dict(zip(SPLITS, np.bincount(codes, minlength=3).tolist(), strict=True)))
    return codes


def _column(table: pa.Table, name: str, origin: str, yaml_path: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise DataError(
            f"{origin}: no column {name!r} for the split; the samples have {table.column_names}"
            f"\n  fix: set `{yaml_path}` to one of them"
        )
    column = table[name]
    nulls = column.null_count
    if nulls:
        first = int(pc.index(pc.is_null(column), True).as_py())
        raise DataError(
            f"{origin}: column {name!r} has {nulls:,} null values (first at row {first:,}); "
            "the split needs every value"
            f"\n  fix: drop those rows with `data.label_rule.drop: {name} IS NULL`, or fill them"
        )
    return column


def _warn_milliseconds(column: pa.ChunkedArray, name: str, origin: str) -> None:
    """Numeric times are unix seconds; a column of milliseconds would put every row after any date."""
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        largest = pc.max(column).as_py()
        if largest is not None and largest > 1e11:
            log.warning(
                "%s: column %r looks like milliseconds (max %.0f); dates compare as seconds", origin, name, largest
            )


def parse_when(text: str, yaml_path: str) -> float:
    """Unix seconds from '1705276800', '2024-01-15' or an ISO timestamp (naive means UTC)."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            yaml_path, f"cannot read {text!r} as a date", fix="use unix seconds or ISO format like 2024-01-15"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()
