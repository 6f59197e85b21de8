"""Sampled negatives for a log of positives: per positive row, rows with another item and label 0.

A sampled row copies its positive's behavior columns (user, time, context) and swaps the item key, so the
later join gives it the sampled item's columns. Sampled rows follow their positive in the output and share
its split, so a user's held-out positive is scored against negatives drawn for the same moment.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recforge.config.negatives import NegativesConfig
from recforge.config.split import SplitConfig
from recforge.data.raw import RawTables
from recforge.data.splits import assign_splits
from recforge.errors import DataError

log = logging.getLogger(__name__)

SAMPLED = "__sampled"  # True on sampled rows; dropped before samples are written
MAX_REDRAWS = 100


def _codes(table: pa.Table, column: str, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, per-row index into them) of a key column without nulls."""
    if column not in table.column_names:
        raise DataError(
            f"{origin}: negatives need the key column {column!r}; the log has {table.column_names}"
            "\n  fix: set `data.tables.user_key` / `item_key`"
        )
    if table[column].null_count:
        raise DataError(f"{origin}: key column {column!r} has nulls\n  fix: drop or fill those rows")
    encoded = pc.dictionary_encode(table[column].combine_chunks())
    return encoded.dictionary, np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def draw_items(
    users: np.ndarray, items: np.ndarray, n_items: int, rows: np.ndarray, cfg: NegativesConfig
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """(source row, sampled item index) of every sampled negative for the positive `rows`, and counts.

    `users` / `items` are per-row indices over the whole log; seen pairs are redrawn up to MAX_REDRAWS times.
    """
    rng = np.random.default_rng(cfg.seed)
    p = None
    if cfg.by == "popularity":
        popularity = np.bincount(items, minlength=n_items).astype(np.float64)
        p = popularity / popularity.sum()
    source = np.repeat(rows, cfg.per_positive)
    drawn = rng.choice(n_items, size=source.size, p=p)
    redrawn = 0
    keep = np.ones(source.size, dtype=bool)
    if cfg.exclude_seen:
        seen = np.unique(users * n_items + items)
        for _ in range(MAX_REDRAWS):
            pair = users[source] * n_items + drawn
            bad = seen[np.minimum(np.searchsorted(seen, pair), seen.size - 1)] == pair
            if not bad.any():
                break
            redrawn += int(bad.sum())
            drawn[bad] = rng.choice(n_items, size=int(bad.sum()), p=p)
        else:
            keep = ~bad
    counts = {"negatives_sampled": int(keep.sum()), "negatives_redrawn_seen": redrawn}
    counts["negatives_short"] = int(source.size - keep.sum())
    return source[keep], drawn[keep], counts


def add_negatives(raw: RawTables, cfg: NegativesConfig, label: str) -> RawTables:
    """`raw` with sampled rows added to the behavior log (each right after its positive) and a 0/1 `label`.

    Without a `label` column every log row is a positive; with one, its 1-rows are.
    """
    origin = raw.origin or "behavior log"
    log_rows = raw.behavior
    if label in log_rows.column_names:
        positive = np.asarray(pc.fill_null(pc.equal(log_rows[label], 1), False).to_numpy(zero_copy_only=False))
        log_rows = log_rows.set_column(log_rows.column_names.index(label), label, log_rows[label].cast(pa.int64()))
    else:
        positive = np.ones(log_rows.num_rows, dtype=bool)
        log_rows = log_rows.append_column(label, pa.array(np.ones(log_rows.num_rows, dtype=np.int64)))
    _, users = _codes(log_rows, raw.user_key, origin)
    item_values, items = _codes(log_rows, raw.item_key, origin)
    source, drawn, counts = draw_items(users, items, len(item_values), np.flatnonzero(positive), cfg)
    if counts["negatives_short"]:
        log.warning("%s: %s negatives could not avoid seen items", origin, f"{counts['negatives_short']:,}")
    sampled = log_rows.take(pa.array(source))
    key = sampled.column_names.index(raw.item_key)
    sampled = sampled.set_column(key, raw.item_key, item_values.take(pa.array(drawn)))
    sampled = sampled.set_column(sampled.column_names.index(label), label, pa.array(np.zeros(source.size, np.int64)))
    both = pa.concat_tables([log_rows, sampled.cast(log_rows.schema)])
    flag = np.concatenate([np.zeros(log_rows.num_rows, dtype=bool), np.ones(source.size, dtype=bool)])
    order = np.argsort(np.concatenate([np.arange(log_rows.num_rows), source]), kind="stable")
    both = both.append_column(SAMPLED, pa.array(flag)).take(pa.array(order))
    counts |= {"log_rows": log_rows.num_rows, "log_positive": int(positive.sum())}
    log.info("%s: sampled negatives %s", origin, counts)
    return RawTables(both, raw.users, raw.items, raw.user_key, raw.item_key, raw.origin, {**raw.counts, **counts})


def split_with_negatives(table: pa.Table, cfg: SplitConfig, origin: str) -> tuple[pa.Table, np.ndarray]:
    """Split codes where sampled rows share the split of the log row before them; the flag column is dropped."""
    if SAMPLED not in table.column_names:
        return table, assign_splits(table, cfg, origin=origin)
    flag = np.asarray(table[SAMPLED].to_numpy(zero_copy_only=False), dtype=bool)
    table = table.drop_columns([SAMPLED])
    logged = np.flatnonzero(~flag)
    codes = assign_splits(table.take(pa.array(logged)), cfg, origin=origin)
    return table, codes[np.cumsum(~flag) - 1]
