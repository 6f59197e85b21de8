"""The synthetic world written to Parquet chunk by chunk, for logs too large to hold in memory (50M+ rows).

Same world as `synthetic.generate_synthetic` for the same config: the users, items and category effects are
the very same draws (the user and item tables are equal), and every impression follows the same model
(users by activity, items by exposure, positions by rank, the same click logit, buy and fav). What differs
is how the impressions are drawn: the log is cut into hourly time slots (how many impressions each slot gets
is one multinomial draw with the world's day x hour weights), consecutive slots form chunks of about
`chunk_rows`, and each chunk draws its impressions from its own generator (`[seed, CHUNK_STREAM, k]`), so
memory holds one chunk and the rows come out in time order, as in memory. The click intercept is
calibrated once on a fixed sample of impressions (the mean CTR is TARGET_CTR within sampling error).

Options whose draws need the whole log at once (clicks raising later clicks, interest phases, the purchase
objective) are refused with the reason; the others (cross_strength, user_taste, noise_columns) work (noise
from its own stream per chunk).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recforge.config.schema import SyntheticConfig
from recforge.data.readers import write_parquet
from recforge.data.synthetic import (
    DAYS,
    HOUR_WEIGHTS,
    START_TS,
    TARGET_CTR,
    World,
    calibrate_intercept,
    draw_engagement,
    draw_placement,
    draw_world,
    entity_tables,
    impression_logit,
    sigmoid,
)
from recforge.errors import ConfigError

log = logging.getLogger(__name__)

CHUNK_STREAM = 20  # generator stream of chunk k: [seed, CHUNK_STREAM, k] (the world's own streams are [seed, 1..13])
CALIBRATION_STREAM = 21
NOISE = 1  # sub-stream of a chunk's noise columns
CALIBRATION_ROWS = 1_000_000  # impressions drawn once to set the click intercept
SLOT_SECONDS = 3_600

WHOLE_LOG_ONLY = {  # option -> why a chunk cannot draw it alone
    "recency_effect": "a click raises the same user's later clicks across chunks",
    "interest_effect": "interest phases swap items across the whole log",
    "purchase": "the purchase objective is drawn over the whole log",
}


def write_synthetic_parquet(cfg: SyntheticConfig, out_dir: str | Path, chunk_rows: int = 1_000_000) -> dict[str, str]:
    """Write behavior.parquet (one row group per chunk), users.parquet and items.parquet under `out_dir`;
    returns their paths by table name. Memory holds the entities and one chunk of impressions."""
    refuse_whole_log_options(cfg)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    world = draw_world(cfg, rng)
    intercept = click_intercept(cfg, world)
    slot_counts = rng.multinomial(cfg.n_impressions, slot_shares())
    paths = {name: str(out / f"{name}.parquet") for name in ("behavior", "users", "items")}
    writer: pq.ParquetWriter | None = None
    try:
        for k, (first_slot, counts) in enumerate(chunk_slots(slot_counts, chunk_rows)):
            chunk = draw_chunk(cfg, world, intercept, [cfg.seed, CHUNK_STREAM, k], first_slot, counts)
            writer = writer or pq.ParquetWriter(paths["behavior"], chunk.schema)
            writer.write_table(chunk, row_group_size=max(chunk.num_rows, 1))
    finally:
        if writer is not None:
            writer.close()
    users, items = entity_tables(world.users, world.items)
    write_parquet(users, paths["users"])
    write_parquet(items, paths["items"])
    log.info("synthetic world: %s impressions in chunks of ~%s rows -> %s", f"{cfg.n_impressions:,}", chunk_rows, out)
    return paths


def refuse_whole_log_options(cfg: SyntheticConfig) -> None:
    for option, why in WHOLE_LOG_ONLY.items():
        if getattr(cfg, option):
            raise ConfigError(
                f"data.synthetic.{option}",
                f"cannot be written chunk by chunk: {why}",
                fix=f"turn `{option}` off, or generate the world in memory (generate_synthetic)",
            )


def slot_shares() -> np.ndarray:
    """Share of the log in each hour of the world's DAYS days (days equally likely, hours by HOUR_WEIGHTS)."""
    return np.tile(HOUR_WEIGHTS / HOUR_WEIGHTS.sum(), DAYS) / DAYS


def chunk_slots(slot_counts: np.ndarray, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first slot, impressions per slot) of consecutive slots holding about `chunk_rows` impressions each
    (a chunk closes once it reaches `chunk_rows`; one slot is never cut)."""
    first, total = 0, 0
    for slot, count in enumerate(slot_counts):
        total += int(count)
        if total >= chunk_rows or slot == len(slot_counts) - 1:
            if total:
                yield first, slot_counts[first : slot + 1]
            first, total = slot + 1, 0


def click_intercept(cfg: SyntheticConfig, world: World) -> float:
    """The logit intercept giving mean click probability TARGET_CTR over a fixed sample of impressions."""
    rng = np.random.default_rng([cfg.seed, CALIBRATION_STREAM])
    u, i, pos = draw_placement(rng, world, min(cfg.n_impressions, CALIBRATION_ROWS))
    return calibrate_intercept(impression_logit(cfg, world, u, i, pos, 0.0), TARGET_CTR)


def draw_chunk(
    cfg: SyntheticConfig,
    world: World,
    intercept: float,
    stream: list[int],
    first_slot: int,
    counts: np.ndarray,
) -> pa.Table:
    """The impressions of consecutive hourly slots (counts[j] in slot first_slot + j), in time order, drawn from
    the generator of `stream`; noise columns from their own stream beside it (`[*stream, NOISE]`)."""
    rng = np.random.default_rng(stream)
    n = int(counts.sum())
    u, i, pos = draw_placement(rng, world, n)
    slots = np.repeat(np.arange(first_slot, first_slot + len(counts)), counts)
    ts = START_TS + slots * SLOT_SECONDS + rng.integers(0, SLOT_SECONDS, n)
    ctr = sigmoid(impression_logit(cfg, world, u, i, pos, 0.0) + intercept)
    click = rng.random(n) < ctr
    buy, fav = draw_engagement(rng, world, u, i, click)
    order = np.argsort(ts, kind="stable")
    columns = {
        "user_id": u + 1,
        "item_id": i + 1,
        "timestamp": ts,
        "position": pos + 1,
        "true_ctr": ctr,
        "click": click.astype(np.int64),
        "buy": buy.astype(np.int64),
        "fav": fav.astype(np.int64),
    }
    noise = np.random.default_rng([*stream, NOISE])
    for j in range(1, cfg.noise_columns + 1):
        columns[f"noise_{j}"] = noise.integers(1, 101, n)  # uniform 1..100, as the in-memory world's noise_columns
    return pa.table({name: values[order] for name, values in columns.items()})
