"""Train/valid/test assignment of sample rows, vectorized in numpy and deterministic for a seed.

`assign_splits` returns one code per row: 0 = train, 1 = valid, 2 = test.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recforge.config.schema import SplitConfig
from recforge.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
TRAIN, VALID, TEST = 0, 1, 2


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


def assign_splits(table: pa.Table, cfg: SplitConfig, origin: str = "samples") -> np.ndarray:
    """int8 split code per row of `table` by `cfg.method`; `origin` names the data in errors."""
    methods: dict[str, Callable[[pa.Table, SplitConfig, str], np.ndarray]] = {
        "random": _random,
        "per_user": _per_user,
        "leave_last": _leave_last,
        "by_date": _by_date,
    }
    codes = methods[cfg.method](table, cfg, origin).astype(np.int8)
    log.info("split %s: %s", cfg.method, dict(zip(SPLITS, np.bincount(codes, minlength=3).tolist(), strict=True)))
    return codes


def _random(table: pa.Table, cfg: SplitConfig, origin: str) -> np.ndarray:
    """Global shuffle, then exact cuts: train and valid sizes are round(n * ratio)."""
    n = table.num_rows
    r = ratios(cfg)
    n_train = round(n * r[0])
    n_train_valid = round(n * (r[0] + r[1]))
    perm = np.random.default_rng(cfg.seed).permutation(n)
    codes = np.full(n, TEST, dtype=np.int8)
    codes[perm[:n_train]] = TRAIN
    codes[perm[n_train:n_train_valid]] = VALID
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


def _groups(table: pa.Table, cfg: SplitConfig, origin: str) -> np.ndarray:
    """Dense int code per user (order of first appearance)."""
    users = _column(table, cfg.user_column, origin, "data.split.user_column")
    encoded = pc.dictionary_encode(users.combine_chunks())
    return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def _rank_in_group(groups: np.ndarray, *keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, rank within group, group size) for rows sorted by group then `keys` (last key most minor)."""
    order = np.lexsort((*reversed(keys), groups))
    sorted_groups = groups[order]
    n = len(groups)
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]]) if n else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, sizes)
    return order, rank, np.repeat(sizes, sizes)


def _per_user(table: pa.Table, cfg: SplitConfig, origin: str) -> np.ndarray:
    """Each user's rows shuffled with the seed and cut by the ratios (a 1-row user lands in train)."""
    groups = _groups(table, cfg, origin)
    r = ratios(cfg)
    shuffle_key = np.random.default_rng(cfg.seed).random(len(groups))
    order, rank, size = _rank_in_group(groups, shuffle_key)
    if cfg.holdout_rounding == "floor":  # RecBole: valid and test floor(n * ratio) rows, train the rest
        n_test = np.floor(size * r[2])
        cut_valid = size - n_test
        cut_train = cut_valid - np.floor(size * r[1])
    else:
        cut_train = np.floor(size * r[0] + 0.5)
        cut_valid = np.floor(size * (r[0] + r[1]) + 0.5)
    codes = np.empty(len(groups), dtype=np.int8)
    codes[order] = np.where(rank < cut_train, TRAIN, np.where(rank < cut_valid, VALID, TEST))
    return codes


def _leave_last(table: pa.Table, cfg: SplitConfig, origin: str) -> np.ndarray:
    """Per user by time: last row -> test, second last -> valid (users with >= 3 rows); ties keep file order.

    A user with 2 rows gives its last to test, a user with 1 row stays in train; both counts are logged.
    """
    groups = _groups(table, cfg, origin)
    times = _seconds(_column(table, cfg.time_column, origin, "data.split.time_column"), cfg.time_column, origin)
    order, rank, size = _rank_in_group(groups, times, np.arange(len(groups)))
    from_end = size - 1 - rank
    sorted_codes = np.where(from_end == 0, TEST, np.where((from_end == 1) & (size >= 3), VALID, TRAIN))
    sorted_codes[size == 1] = TRAIN
    codes = np.empty(len(groups), dtype=np.int8)
    codes[order] = sorted_codes
    n_users = int(groups.max()) + 1 if len(groups) else 0
    per_user = np.bincount(groups, minlength=n_users)
    short = {"one_row": int((per_user == 1).sum()), "two_rows": int((per_user == 2).sum())}
    if short["one_row"] or short["two_rows"]:
        log.info("leave_last: users with 1 row kept in train: %d; with 2 rows (no valid row): %d", *short.values())
    return codes


def _seconds(column: pa.ChunkedArray, name: str, origin: str) -> np.ndarray:
    """Unix seconds from a numeric (already seconds) or date/timestamp column."""
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = np.asarray(column.to_numpy(), dtype=np.float64)
        if values.size and np.nanmax(values) > 1e11:
            log.warning(
                "%s: column %r looks like milliseconds (max %.0f); dates compare as seconds",
                origin,
                name,
                np.nanmax(values),
            )
        return values
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        stamps = column.to_numpy().astype("datetime64[s]")
        return stamps.astype(np.int64).astype(np.float64)
    raise DataError(
        f"{origin}: column {name!r} is {kind}, the split needs unix seconds or a date/timestamp"
        f"\n  fix: convert it, or point `data.split.time_column` at another column"
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


def _by_date(table: pa.Table, cfg: SplitConfig, origin: str) -> np.ndarray:
    """Rows at or after `test_from` -> test, at or after `valid_from` -> valid, earlier -> train."""
    if cfg.valid_from is None and cfg.test_from is None:
        raise ConfigError("data.split", "method by_date needs `valid_from` and/or `test_from`", fix="set the dates")
    times = _seconds(_column(table, cfg.time_column, origin, "data.split.time_column"), cfg.time_column, origin)
    valid_from = parse_when(cfg.valid_from, "data.split.valid_from") if cfg.valid_from else np.inf
    test_from = parse_when(cfg.test_from, "data.split.test_from") if cfg.test_from else np.inf
    if cfg.valid_from and cfg.test_from and valid_from > test_from:
        raise ConfigError("data.split.valid_from", f"{cfg.valid_from} is after test_from {cfg.test_from}")
    return np.where(times >= test_from, TEST, np.where(times >= valid_from, VALID, TRAIN))
