"""FTRL end to end on a real redis-server: stream ftrl -> model stream of bundles -> stream predict, exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml

from recforge.bundle import load_bundle, score_table
from recforge.bundle.stream import current, versions
from recforge.config import PipelineConfig, build_config
from recforge.data.streams import open_source, produce
from recforge.errors import ConfigError
from recforge.online.ftrl_stream import FtrlStreamJob
from recforge.online.stream_predict import predict_stream
from recforge.train.metrics import auc


def clicks(n: int, seed: int) -> pa.Table:
    """Even items are clicked far more often: a signal FTRL finds within a few thousand rows."""
    rng = np.random.default_rng(seed)
    items = rng.integers(0, 200, n)
    users = rng.integers(0, 1000, n)
    label = (rng.random(n) < np.where(items % 2 == 0, 0.4, 0.05)).astype(np.int64)
    return pa.table({"user_id": users, "item_id": items, "click": label, "timestamp": np.arange(n)})


def ftrl_pipeline(**online: object) -> PipelineConfig:
    """lr over hashed user and item ids, fitted by FTRL; `online` sets the job's batch, publish and gate options."""
    return build_config(
        {
            "name": "ftrl-clicks",
            "data": {"label": "click"},
            "features": [
                {"name": "user_id", "kind": "id", "side": "user", "hash_buckets": 2**16},
                {"name": "item_id", "kind": "id", "side": "item", "hash_buckets": 2**16},
            ],
            "model": {"name": "lr"},
            "train": {"trainer": "ftrl", "ftrl": {"alpha": 0.1, "l1": 0.5}},
            "online": {"fit_rows": 1000, "publish_every_s": None, **online},
        }
    )


def test_ftrl_streams_into_versions_that_stream_predict_serves(redis_url: str, tmp_path: Path) -> None:
    name = uuid.uuid4().hex[:8]
    events_url = f"{redis_url}?stream=ev-{name}&group=ftrl&consumer=c"
    scored_url = f"{redis_url}?stream=scored-{name}&group=check&consumer=c"
    data = clicks(20_000, seed=0)
    produce(data.slice(0, 12_000), events_url, progress=False)
    cfg = ftrl_pipeline(publish_every_rows=4000, batch_size=1000)
    first = FtrlStreamJob(cfg, events_url, tmp_path / "models", tmp_path / "work").run(max_rows=7000)
    produce(data.slice(12_000), events_url, progress=False)
    second = FtrlStreamJob(cfg, events_url, tmp_path / "models", tmp_path / "work").run(until_idle_s=0.5)
    assert first.samples == 7000 and second.samples == 20_000 and second.skipped == 0
    assert second.auc > 0.75
    published = versions(tmp_path / "models")
    assert len(published) == len(first.published) + len(second.published) >= 5
    served = json.loads((current(tmp_path / "models").path / "manifest.json").read_text())
    assert served["stream"]["samples"] == 20_000
    assert served["gate"]["passed"] is True and served["gate"]["judge"] == "recforge stream ftrl"
    assert served["gate"]["metrics"]["min_auc"] is None and served["gate"]["metrics"]["rows"] > 0
    assert served["format"] == "recforge.bundle/1" and served["model"] == "lr", "an FTRL version is a bundle"

    report = predict_stream(
        tmp_path / "models", f"{redis_url}?stream=ev-{name}&group=pred&consumer=c", scored_url, until_idle_s=0.5
    )
    assert report.rows == 20_000 and report.versions == [served["version"]]
    with open_source(scored_url) as out:
        tables = []
        while (batch := out.read(5000, 200)) is not None:
            tables.append(batch.table)
    scored = pa.concat_tables(tables)
    assert scored.num_rows == 20_000 and set(scored["model_version"].to_pylist()) == {served["version"]}
    offline = score_table(load_bundle(current(tmp_path / "models").path), scored)
    np.testing.assert_allclose(scored["score"].to_numpy(), offline, rtol=0, atol=1e-12)
    assert auc(scored["click"].to_numpy().astype(float), scored["score"].to_numpy()) > 0.75


def test_each_stream_command_names_the_other_for_the_other_family(tmp_path: Path) -> None:
    from recforge.online.stream_trainer import StreamTrainer

    with pytest.raises(ConfigError, match=r"(?s)'ftrl' trainer.*use `recforge stream ftrl` for ftrl"):
        StreamTrainer(ftrl_pipeline(), "redis://127.0.0.1:1/0?stream=x", tmp_path / "m", tmp_path / "w")
    sgd = ftrl_pipeline().model_copy(update={"train": ftrl_pipeline().train.model_copy(update={"trainer": None})})
    with pytest.raises(ConfigError, match=r"(?s)train.trainer: `recforge stream ftrl` runs the ftrl trainer"):
        FtrlStreamJob(sgd, "redis://127.0.0.1:1/0?stream=x", tmp_path / "m", tmp_path / "w")


def test_a_retired_ftrl_job_yaml_gets_the_way_to_a_pipeline_config(tmp_path: Path) -> None:
    old = {"label": "click", "hasher": {"categorical": ["user_id", "item_id"], "bits": 16}, "alpha": 0.1}
    (tmp_path / "ftrl.yaml").write_text(yaml.safe_dump(old))
    cmd = [sys.executable, "-m", "recforge", "stream", "ftrl", str(tmp_path / "ftrl.yaml"), "--source", "redis://x"]
    proc = subprocess.run([*cmd, "--models", "m", "--work", "w"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "`hasher:` is the retired FTRL job format" in proc.stderr + proc.stdout
    assert "examples/synthetic_ftrl.yaml" in proc.stderr + proc.stdout
    assert not (tmp_path / "m").exists(), "nothing is created for a config that does not validate"
