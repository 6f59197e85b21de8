"""What a trained run needs to be served: its user/item tables and a serving.yaml beside the bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from recforge.config import PipelineConfig
from recforge.config.serving import SERVING_FILE
from recforge.data.sources import load_source
from recforge.errors import ConfigError


def write_serving_files(
    cfg: PipelineConfig, out_dir: str | Path, recall_bundle: str | Path | None, candidates: int = 500
) -> Path:
    """Write OUT/tables/{users,items}.parquet and OUT/serving.yaml (paths relative to OUT).

    The tables are the raw user and item tables of the run's data source, exactly as training joined
    them, so the embedded feature store serves the very values the model was trained on.
    """
    out = Path(out_dir)
    raw = load_source(cfg.data)
    if raw.items is None:
        raise ConfigError("data", "the data source has no item table; serving needs item features")
    tables = out / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    entities: dict[str, Any] = {}
    for entity, table, key in (("user", raw.users, raw.user_key), ("item", raw.items, raw.item_key)):
        if table is None:
            continue
        pq.write_table(table, tables / f"{entity}s.parquet")
        entities[entity] = {"path": f"tables/{entity}s.parquet", "key": key}
    serving: dict[str, Any] = {
        "store": {"kind": "embedded", "entities": entities},
        "recommend": {"k": 10, "candidates": candidates},
    }
    if recall_bundle is not None:
        serving["recall"] = str(Path(recall_bundle).resolve().relative_to(out.resolve()))
    path = out / SERVING_FILE
    path.write_text(yaml.safe_dump(serving, sort_keys=False))
    return path
