"""Behavior log -> RecallData: filter, weigh, deduplicate, k-core and split, every dropped row counted."""

from __future__ import annotations

import logging

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recforge.config.recall import InteractionsConfig
from recforge.data.duck import fetch_arrow, quote
from recforge.data.raw import RawTables
from recforge.data.splits import TEST, TRAIN, VALID, assign_splits
from recforge.errors import ConfigError, DataError
from recforge.recall.interactions import Interactions, RecallData, Vocab

log = logging.getLogger(__name__)


def build_recall_data(raw: RawTables, cfg: InteractionsConfig) -> RecallData:
    """Interactions of `raw.behavior` by `cfg`; `counts` tells what each step removed."""
    origin = raw.origin or "behavior"
    table, counts = select_interactions(raw, cfg)
    table, counts["duplicate_rows_merged"] = _deduplicate(table, cfg.duplicates)
    keep = k_core(table, cfg.min_user_interactions, cfg.min_item_interactions)
    counts["k_core_dropped"] = int(table.num_rows - keep.sum())
    table = table.filter(pa.array(keep))
    if table.num_rows == 0:
        raise DataError(
            f"{origin}: no interactions left after filtering ({counts})"
            "\n  fix: loosen `recall.interactions.positive` or the min_*_interactions thresholds"
        )
    vocab = Vocab(pc.unique(table["user"]), pc.unique(table["item"]))
    users = vocab.encode_users(table["user"])
    items = vocab.encode_items(table["item"])
    weights = table["weight"].to_numpy().astype(np.float32)
    times = table["time"].to_numpy().astype(np.int64) if "time" in table.column_names else None
    zeros = np.zeros(len(users), np.int64)
    # the split hashes every column: user, item and time key each interaction (user and time alone tie, and a
    # tie's order within a user is not deterministic)
    split_input = pa.table({"user": users, "item": items, "time": times if times is not None else zeros})
    split_cfg = cfg.split.model_copy(update={"user_column": "user", "time_column": "time"})
    codes = assign_splits(split_input, split_cfg, origin=origin)

    def part(code: int) -> Interactions | None:
        rows = np.flatnonzero(codes == code)
        if code != TRAIN and rows.size == 0:
            return None
        return Interactions(
            users[rows],
            items[rows],
            weights[rows],
            None if times is None else times[rows],
            vocab.n_users,
            vocab.n_items,
        )

    train, valid, test = part(TRAIN), part(VALID), part(TEST)
    assert train is not None
    counts.update(
        users=vocab.n_users,
        items=vocab.n_items,
        train=len(train),
        valid=len(valid) if valid else 0,
        test=len(test) if test else 0,
    )
    log.info("recall interactions from %s: %s", origin, counts)
    return RecallData(vocab, train, valid, test, counts)


def select_interactions(raw: RawTables, cfg: InteractionsConfig) -> tuple[pa.Table, dict[str, int]]:
    """Columns user, item, weight (float64), time (int64, when configured) of the rows passing `positive`."""
    behavior = raw.behavior
    origin = raw.origin or "behavior"
    user_col = cfg.user_column or raw.user_key
    item_col = cfg.item_column or raw.item_key
    time_col = cfg.time_column if cfg.time_column in behavior.column_names else None
    if cfg.time_column and time_col is None and cfg.split.method in ("leave_last", "by_date"):
        raise DataError(f"{origin}: split {cfg.split.method} needs column {cfg.time_column!r}; it has none")
    for column, key in ((user_col, "user_column"), (item_col, "item_column")):
        if column not in behavior.column_names:
            raise DataError(
                f"{origin}: no column {column!r}; the behavior log has {behavior.column_names}"
                f"\n  fix: set `recall.interactions.{key}`"
            )
    weight = cfg.weight or "1.0"
    where = cfg.positive or "TRUE"
    select = f"{quote(user_col)} AS user, {quote(item_col)} AS item, CAST(({weight}) AS DOUBLE) AS weight"
    if time_col:
        select += f", CAST({quote(time_col)} AS BIGINT) AS time"
    con = duckdb.connect()
    con.register("behavior", behavior)
    try:
        table = fetch_arrow(con, f"SELECT {select} FROM behavior WHERE ({where})")
    except duckdb.Error as err:
        first = str(err).splitlines()[0]
        raise ConfigError(
            "recall.interactions",
            f"cannot apply positive={where!r} / weight={weight!r} to {origin}: {first}",
            fix=f"use columns of the behavior log: {behavior.column_names}",
        ) from None
    finally:
        con.close()
    counts = {"rows": behavior.num_rows, "filtered_out": behavior.num_rows - table.num_rows}
    bad = pc.or_(
        pc.or_(pc.is_null(table["user"]), pc.is_null(table["item"])),
        pc.invert(pc.fill_null(pc.greater(table["weight"], 0.0), False)),
    )
    counts["null_id_or_nonpositive_weight"] = int(pc.sum(bad).as_py() or 0)
    if counts["null_id_or_nonpositive_weight"]:
        log.warning(
            "%s: %d rows with a null id or a weight that is not > 0 are not interactions",
            origin,
            counts["null_id_or_nonpositive_weight"],
        )
        table = table.filter(pc.invert(bad))
    if table.num_rows == 0:
        raise DataError(
            f"{origin}: the filter {where!r} leaves no interactions (of {behavior.num_rows:,} rows)"
            "\n  fix: check `recall.interactions.positive` and `weight`"
        )
    return table, counts


def _deduplicate(table: pa.Table, how: str) -> tuple[pa.Table, int]:
    """One row per (user, item): weight by `how`, time of the latest row."""
    aggregate = {"max": "max", "sum": "sum", "first": "first"}[how]
    aggs = [("weight", aggregate)] + ([("time", "max")] if "time" in table.column_names else [])
    grouped = table.group_by(["user", "item"], use_threads=False).aggregate(aggs)
    columns = {"user": grouped["user"], "item": grouped["item"], "weight": grouped[f"weight_{aggregate}"]}
    if "time" in table.column_names:
        columns["time"] = grouped["time_max"]
    return pa.table(columns), table.num_rows - grouped.num_rows


def k_core(table: pa.Table, min_user: int, min_item: int) -> np.ndarray:
    """Rows kept by iterative k-core filtering: repeat until every user and item has enough rows."""
    keep = np.ones(table.num_rows, dtype=bool)
    if min_user <= 1 and min_item <= 1:
        return keep
    users = pc.dictionary_encode(table["user"].combine_chunks()).indices.to_numpy()
    items = pc.dictionary_encode(table["item"].combine_chunks()).indices.to_numpy()
    while True:
        user_n = np.bincount(users[keep], minlength=users.max() + 1)
        item_n = np.bincount(items[keep], minlength=items.max() + 1)
        bad = keep & ((user_n[users] < min_user) | (item_n[items] < min_item))
        if not bad.any():
            return keep
        keep &= ~bad


__all__ = ["TEST", "TRAIN", "VALID", "build_recall_data", "k_core", "select_interactions"]
