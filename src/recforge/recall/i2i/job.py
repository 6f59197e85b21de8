"""Entry point of the i2i job: clean the input, run the plan on the configured engine, decode ids, write."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from recforge.config.i2i import I2IConfig
from recforge.data.duck import fetch_arrow
from recforge.data.readers import resolve, write_parquet
from recforge.errors import ConfigError
from recforge.recall.i2i import numpy_engine, spark_engine  # noqa: F401  (register the engines)
from recforge.recall.i2i.duckdb_engine import connect  # also registers the engine
from recforge.recall.i2i.plan import ENGINES, make_plan
from recforge.recall.i2i.prepare import Source, prepare

log = logging.getLogger(__name__)

OutputFormat = Literal["parquet", "csv", "text_parquet", "text_csv"]

# Options that only one family of methods reads; setting one for another method is a mistake worth an error.
COOCCURRENCE_ONLY = ("similarity", "alpha", "penalty", "time_decay", "min_co_count")
SWING_ONLY = ("swing_alpha", "swing_user_weight", "max_users_per_item", "swing_keep", "seed")


@dataclass(frozen=True)
class I2IResult:
    """`table`: key id, similar id, score (float64), rank (int32, 1-based), sorted by key id then rank.

    Columns are `item_id, similar_item_id, score, rank` for itemcf and swing, `user_id, similar_user_id, ...`
    for usercf. `stats` counts rows in, dropped by reason, duplicates, users, items, pairs and output rows.
    """

    table: pa.Table
    stats: dict[str, Any] = field(default_factory=dict)


def run_i2i(source: Source, config: I2IConfig) -> I2IResult:
    """Top-N similar items (users for usercf) per item from a behavior table or file, by `config`.

    >>> import pyarrow as pa
    >>> table = pa.table({"user_id": [1, 1, 2, 2, 3], "item_id": ["a", "b", "a", "b", "a"]})
    >>> result = run_i2i(table, I2IConfig(top_n=5))
    >>> to_text_form(result.table).to_pylist()  # cosine: 2 shared users / sqrt(3 users * 2 users)
    [{'item_id': 'a', 'similar_items': 'b:0.816497'}, {'item_id': 'b', 'similar_items': 'a:0.816497'}]
    """
    check_config(config)
    engine = ENGINES.get(config.engine, yaml_path="engine")
    start = time.perf_counter()
    data = prepare(source, config)
    plan = make_plan(data, config)
    output = engine(plan, config)
    side = "user" if config.method == "usercf" else "item"
    rows = output.table.sort_by([("key", "ascending"), ("rank", "ascending")])
    table = pa.table(
        {
            f"{side}_id": data.key_ids.take(rows["key"]),
            f"similar_{side}_id": data.key_ids.take(rows["other"]),
            "score": rows["score"],
            "rank": rows["rank"],
        }
    )
    stats: dict[str, Any] = {
        "method": config.method,
        "engine": config.engine,
        **data.counts,
        **plan.counts,
        "pairs": output.pairs,
        f"{side}s_with_neighbors": pc.count_distinct(rows["key"]).as_py(),
        "output_rows": table.num_rows,
        "seconds": round(time.perf_counter() - start, 3),
    }
    log.info("i2i %s on %s: %s", config.method, config.engine, stats)
    if table.num_rows == 0:
        log.warning("i2i %s: no two %ss share enough %ss; the result is empty", config.method, side, other_side(side))
    return I2IResult(table=table, stats=stats)


def other_side(side: str) -> str:
    return "item" if side == "user" else "user"


def check_config(config: I2IConfig) -> None:
    """Reject options the chosen method would silently ignore."""
    ignored = SWING_ONLY if config.method != "swing" else COOCCURRENCE_ONLY
    for name in ignored:
        if name in config.model_fields_set:
            users = "swing" if name in SWING_ONLY else "itemcf and usercf"
            raise ConfigError(name, f"applies only to {users}; the method is {config.method!r}", fix=f"remove `{name}`")


def to_text_form(table: pa.Table, decimals: int = 6) -> pa.Table:
    """One row per key: `similar_items` = "id:score,id:score,..." by rank, scores with fixed `decimals`."""
    key, other = table.column_names[:2]
    similar = "similar_users" if key == "user_id" else "similar_items"
    con = connect()
    try:
        con.register("long", table)
        return fetch_arrow(
            con,
            f"SELECT \"{key}\", string_agg(printf('%s:%.{int(decimals)}f', CAST(\"{other}\" AS VARCHAR), score), ',' "
            "ORDER BY rank) "
            f'AS {similar} FROM long GROUP BY "{key}" ORDER BY "{key}"',
        )
    finally:
        con.close()


def write_i2i(result: I2IResult | pa.Table, out_path: str, fmt: OutputFormat = "parquet") -> None:
    """Write the long table (`parquet`, `csv`) or the text form (`text_parquet`, `text_csv`) to `out_path`."""
    table = result.table if isinstance(result, I2IResult) else result
    if fmt.startswith("text_"):
        table = to_text_form(table)
    if fmt.endswith("parquet"):
        write_parquet(table, out_path)
    else:
        _write_csv(table, out_path)


def _write_csv(table: pa.Table, path: str) -> None:
    """CSV written aside and moved into place, so no reader sees half a file."""
    fs, inner = resolve(str(path))
    parent = str(PurePosixPath(inner).parent)
    if parent not in ("", "."):
        fs.create_dir(parent, recursive=True)
    partial = f"{inner}.partial"
    with fs.open_output_stream(partial) as stream:
        pacsv.write_csv(table, stream)
    fs.move(partial, inner)
