"""The synthetic world written chunk by chunk: bounded chunks, time order, the same entities and click model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from recforge.cli import app
from recforge.config.schema import SyntheticConfig
from recforge.data import generate_synthetic, oracle_auc
from recforge.data.readers import read_table
from recforge.data.synthetic_parquet import chunk_slots, write_synthetic_parquet
from recforge.errors import ConfigError

WORLD = SyntheticConfig(n_users=2_000, n_items=600, n_categories=20, n_impressions=120_000, seed=5, noise_columns=1)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return write_synthetic_parquet(WORLD, tmp_path_factory.mktemp("world"), chunk_rows=20_000)


def test_the_log_is_written_in_bounded_chunks_in_time_order(written: dict[str, str]) -> None:
    meta = pq.ParquetFile(written["behavior"]).metadata
    groups = [meta.row_group(k).num_rows for k in range(meta.num_row_groups)]
    assert sum(groups) == meta.num_rows == 120_000
    assert len(groups) >= 6 and max(groups) < 20_000 + 400  # a chunk closes within one hourly slot of the bound
    ts = read_table(written["behavior"], ["timestamp"]).column(0).to_numpy()
    assert np.all(np.diff(ts) >= 0)


def test_same_entities_and_click_model_as_the_world_in_memory(written: dict[str, str]) -> None:
    memory = generate_synthetic(WORLD)
    assert read_table(written["users"]).equals(memory.users)
    assert read_table(written["items"]).equals(memory.items)
    chunked = read_table(written["behavior"])
    assert chunked.schema == memory.behavior.schema
    assert chunked["click"].to_numpy().mean() == pytest.approx(0.09, abs=0.004)  # TARGET_CTR
    assert oracle_auc(chunked) == pytest.approx(oracle_auc(memory.behavior), abs=0.01)
    for name, size in (("user_id", WORLD.n_users), ("item_id", WORLD.n_items)):  # users by activity, items by exposure
        counts = [np.bincount(t[name].to_numpy(), minlength=size + 1) for t in (chunked, memory.behavior)]
        assert np.corrcoef(*counts)[0, 1] > 0.95, name
    positions = [np.bincount(t["position"].to_numpy()) / t.num_rows for t in (chunked, memory.behavior)]
    assert np.abs(positions[0] - positions[1]).sum() < 0.02
    assert set(np.unique(chunked["noise_1"].to_numpy())) == set(range(1, 101))


def test_chunks_never_cut_a_slot_and_cover_every_impression() -> None:
    counts = np.array([5, 0, 7, 3, 0, 0, 9])
    chunks = list(chunk_slots(counts, 8))
    assert [(first, part.tolist()) for first, part in chunks] == [(0, [5, 0, 7]), (3, [3, 0, 0, 9])]


@pytest.mark.parametrize("option", [{"recency_effect": 0.5}, {"interest_effect": 0.5}, {"purchase": True}])
def test_options_that_need_the_whole_log_are_refused(option: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"data.synthetic.{next(iter(option))}: cannot be written chunk by chunk"):
        write_synthetic_parquet(WORLD.model_copy(update=option), tmp_path)


def test_the_cli_writes_the_world_chunk_by_chunk(tmp_path: Path) -> None:
    sizes = ["--set", "n_impressions=3000", "--set", "n_users=100", "--set", "n_items=50"]
    result = CliRunner().invoke(app, ["data", "synthetic", "--out", str(tmp_path), *sizes, "--chunk-rows", "1000"])
    assert result.exit_code == 0, result.output
    assert f"behavior: 3,000 rows -> {tmp_path / 'behavior.parquet'}" in result.output
    assert pq.ParquetFile(tmp_path / "behavior.parquet").metadata.num_row_groups == 3
