"""A plain Parquet behavior log is staged for Spark batch by batch: the rows and row numbers of loading it whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recforge.config.schema import DataConfig, SyntheticConfig
from recforge.data import generate_synthetic, spark_input
from recforge.data.sample_plan import ROW
from recforge.data.spark_input import copy_with_row_numbers, streams_behavior


def test_the_log_is_copied_batch_by_batch_with_its_row_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spark_input, "STAGE_ROWS", 1_000)
    log = generate_synthetic(SyntheticConfig(n_users=200, n_items=80, n_impressions=4_500, seed=1)).behavior
    pq.write_table(log, tmp_path / "log.parquet", row_group_size=700)
    assert copy_with_row_numbers(str(tmp_path / "log.parquet"), tmp_path / "staged.parquet") == 4_500
    staged = pq.ParquetFile(tmp_path / "staged.parquet")
    assert staged.metadata.num_row_groups > 1
    expected = log.append_column(ROW, pa.array(np.arange(log.num_rows, dtype=np.int64)))
    assert staged.read().equals(expected)


def test_only_a_plain_parquet_log_without_negatives_is_streamed(tmp_path: Path) -> None:
    pq.write_table(pa.table({"user_id": [1], "item_id": [2], "click": [1]}), tmp_path / "log.parquet")
    (tmp_path / "log.csv").write_text("user_id,item_id,click\n1,2,1\n")
    plain = {"source": "tables", "label": "click", "tables": {"behavior": str(tmp_path / "log.parquet")}}
    assert streams_behavior(DataConfig.model_validate(plain))
    derived = {"path": str(tmp_path / "log.parquet"), "derive": {"hour": "user_id % 24"}}
    for other in (
        {**plain, "tables": {"behavior": derived}},
        {**plain, "tables": {"behavior": str(tmp_path / "log.csv")}},
        {**plain, "negatives": {"per_positive": 1}},
        {"source": "synthetic", "label": "click"},
    ):
        assert not streams_behavior(DataConfig.model_validate(other)), other
