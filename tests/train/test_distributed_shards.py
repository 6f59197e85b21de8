"""Each rank's share of the samples (row ranges read by row group, equal step counts) and what several
processes refuse before any of them starts."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from recforge.batch import Batch
from recforge.config import build_config
from recforge.config.tasks import Task
from recforge.data import build_samples
from recforge.data.readers import iter_batches
from recforge.errors import ConfigError, DataError
from recforge.features import FeatureSet
from recforge.pipeline import check
from recforge.train.distributed.context import DistContext
from recforge.train.distributed.evaluation import evaluate_all_ranks
from recforge.train.distributed.loader import ShardedBatchLoader, equal_steps
from recforge.train.distributed.shards import iter_shard, plan_shard
from recforge.train.evaluation import Outputs, score_outputs

from support import REPO, recforge, recforge_command, small_synthetic


@pytest.fixture()
def numbered(tmp_path: Path) -> Path:
    """1,003 rows numbered 0..1002 in row groups of 100 rows (the last one 3 rows)."""
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"row": np.arange(1003)}), path, row_group_size=100)
    return path


@pytest.mark.parametrize("world", [1, 2, 3, 7])
def test_shares_cover_every_row_once_and_differ_by_at_most_one(numbered: Path, world: int) -> None:
    shares = [plan_shard(str(numbered), rank, world) for rank in range(world)]
    rows = [np.concatenate([b.column(0).to_numpy() for b in iter_shard(s, ["row"], 64)]) for s in shares]
    assert np.array_equal(np.concatenate(rows), np.arange(1003))
    assert max(map(len, rows)) - min(map(len, rows)) <= 1
    assert all(s.min_rows == 1003 // world for s in shares)


def test_a_rank_reads_only_the_row_groups_its_rows_lie_in(numbered: Path) -> None:
    second = plan_shard(str(numbered), 1, 2)  # rows 501..1002
    assert (second.first_row, second.rows) == (501, 502)
    assert [p.row_group for p in second.pieces] == [5, 6, 7, 8, 9, 10]
    assert (second.pieces[0].start, second.pieces[0].stop) == (1, 100)  # row 500 is rank 0's


def test_a_directory_of_parquet_files_is_one_row_sequence(tmp_path: Path) -> None:
    for part in range(3):
        pq.write_table(pa.table({"row": np.arange(part * 10, part * 10 + 10)}), tmp_path / f"part-{part}.parquet")
    shares = [plan_shard(str(tmp_path), rank, 4) for rank in range(4)]
    assert [s.rows for s in shares] == [7, 8, 7, 8]
    got = [row for s in shares for b in iter_shard(s, ["row"], 100) for row in b.column(0).to_pylist()]
    assert got == list(range(30))


def test_fewer_rows_than_processes_and_a_missing_file_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        plan_shard(str(tmp_path / "none.parquet"), 0, 2)
    tiny = tmp_path / "tiny.parquet"
    pq.write_table(pa.table({"row": [1]}), tiny)
    with pytest.raises(DataError, match="1 rows cannot be shared by 2 training processes"):
        ShardedBatchLoader(str(tiny), None, 4, rank=0, world_size=2)  # type: ignore[arg-type]


def batch(rows: int) -> Batch:
    return Batch(ids=torch.arange(rows).unsqueeze(1), bags={}, dense=torch.zeros(rows, 0))


def test_equal_steps_folds_the_extra_batch_of_a_longer_share_into_its_last() -> None:
    sizes = [b.size for b in equal_steps(iter([batch(4), batch(4), batch(1)]), 2)]
    assert sizes == [4, 5]
    assert [b.size for b in equal_steps(iter([batch(4), batch(3)]), 2)] == [4, 3]


def test_metrics_are_computed_over_the_union_of_the_ranks_rows() -> None:
    """What the gather feeds the metrics: AUC of the union, which no mean of per-rank AUCs gives here."""
    task = Task("", "y", metrics=("auc",))
    a = Outputs({"y": np.array([0.0, 1.0])}, np.array([[0.1], [0.2]]), {})
    b = Outputs({"y": np.array([0.0, 1.0])}, np.array([[0.3], [0.4]]), {})
    union = score_outputs(Outputs.concat([a, b]), (task,))["auc"]
    assert union == pytest.approx(0.75)  # per rank both are 1.0
    assert evaluate_all_ranks(DistContext(), torch.nn.Identity(), [], (task,)) == {}


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda t: t["features"][0].update(storage={"kind": "dynamic"}), "features[0].storage"),
        (lambda t: t["train"].update(batch_size=1001), "train.batch_size"),
        (lambda t: t["model"].update(name="gbdt_lr"), "train.trainer"),
        (lambda t: t["train"].update(distributed={"embeddings": "sharded"}), "train.distributed.embeddings"),
    ],
)
def test_what_two_processes_cannot_train_is_a_config_error(change: object, path: str) -> None:
    tree = small_synthetic()
    change(tree)  # type: ignore[operator]
    if tree["model"]["name"] == "gbdt_lr":
        tree["model"] = {"name": "gbdt_lr"}
    with pytest.raises(ConfigError) as err:
        check(build_config(tree), world_size=2)
    assert err.value.path == path
    assert "fix:" in str(err.value)


def test_nproc_with_a_dynamic_table_stops_before_any_process_starts(tmp_path: Path) -> None:
    config = tmp_path / "p.yaml"
    tree = small_synthetic()
    tree["features"][0]["storage"] = {"kind": "dynamic"}
    config.write_text(yaml.safe_dump(tree))
    proc = recforge("train", config, "--out", tmp_path / "run", "--nproc", "2", check=False)
    assert proc.returncode == 2
    assert "a dynamic (growing) embedding table cannot be trained by several processes" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


def test_nproc_inside_a_torchrun_launch_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "p.yaml"
    config.write_text(yaml.safe_dump(small_synthetic()))
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}
    cmd = recforge_command("train", config, "--out", tmp_path / "run", "--nproc", "2")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: --nproc: this process was started by torchrun already")
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[FeatureSet, str, int]:
    """The small world's fitted features and its training samples rewritten in row groups of 4,000 rows."""
    root = tmp_path_factory.mktemp("samples")
    cfg = build_config(small_synthetic())
    samples = build_samples(cfg.data, root, labels=("click",))
    features = FeatureSet.from_config(cfg).fit(iter_batches(samples.train, columns=None))
    table = pq.read_table(samples.train)
    pq.write_table(table, root / "grouped.parquet", row_group_size=4000)
    return features, str(root / "grouped.parquet"), table.num_rows


@pytest.mark.parametrize("mode", ["memory", "stream"])
def test_every_rank_takes_the_same_number_of_batches_and_all_rows_are_trained(
    sample_file: tuple[FeatureSet, str, int], mode: str
) -> None:
    features, path, rows = sample_file
    loaders = [
        ShardedBatchLoader(path, features, 700, mode=mode, shuffle_buffer=2, read_rows=3000, rank=r, world_size=3)
        for r in range(3)
    ]
    sizes = [[b.size for b in loader.epoch(1)] for loader in loaders]
    assert [len(s) for s in sizes] == [loaders[0].steps] * 3 == [math.ceil(rows // 3 / 700)] * 3
    assert sum(map(sum, sizes)) == rows
    whole, resumed = list(loaders[1].epoch(2))[3:], list(loaders[1].epoch(2, skip=3))  # a resumed epoch goes on
    assert len(whole) == len(resumed) and all(torch.equal(a.ids, b.ids) for a, b in zip(whole, resumed, strict=True))
