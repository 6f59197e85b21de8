"""Recall end to end: YAML -> channels fitted and evaluated -> bundle, through the library and the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from typer.testing import CliRunner

from recforge import pipeline
from recforge.cli import app
from recforge.config import build_config, load_config
from recforge.config.recall import ChannelConfig
from recforge.errors import ConfigError
from recforge.recall.channels import FitContext, build_channel
from recforge.recall.interactions import Interactions, Vocab

from support import REPO

CLI = (sys.executable, "-m", "recforge", "recall", "i2i")
METRICS = ("recall", "ndcg", "mrr", "hit", "precision")


@pytest.mark.slow
def test_movielens_recall_reaches_the_bpr_quickstart_and_merge_helps(ml100k_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(REPO / "examples" / "movielens_recall.yaml", [f"data.path={ml100k_dir}", "recall.progress=false"])
    run = pipeline.recall_train(cfg, tmp_path / "run")
    m = run.metrics
    assert m["counts"]["users"] == 939 and m["counts"]["items"] == 1016  # rating >= 3, 10-core
    for name, channel in m["channels"].items():
        for metric in METRICS:
            assert f"{metric}@10" in channel["test"], (name, metric)
    best = max(m["channels"].values(), key=lambda c: c["test"]["ndcg@10"])
    # RecBole's published BPR quick-start on ml-100k: recall@10 0.2523, ndcg@10 0.292 (see bench/RESULTS.md)
    assert best["test"]["recall@10"] >= 0.2523
    # NDCG@10 moves by about +-0.01 with the split's draw (EASE 0.270-0.278 over four seeds, bench/RESULTS.md); the
    # keyed-hash split of this config gives 0.2800 (the permutation split before it gave 0.288)
    assert best["test"]["ndcg@10"] >= 0.275
    best_recall50 = max(c["test"]["recall@50"] for c in m["channels"].values())
    assert m["test"]["recall@50"] > best_recall50  # the merged list beats every single channel
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["test"] == pytest.approx(m["test"])
    assert (tmp_path / "run" / "channels" / "ease" / "metrics.json").exists()
    shown = CliRunner().invoke(app, ["recall", "eval", str(tmp_path / "run"), "--set", "recall.progress=false"])
    assert shown.exit_code == 0 and "{" not in shown.output, shown.output  # the table only, no JSON dump after it
    assert cfg.recall is not None
    assert {line.split()[1] for line in shown.output.splitlines()[1:]} == {str(k) for k in cfg.recall.eval.ks}
    again = pipeline.recall_eval(tmp_path / "run")
    assert again["test"] == pytest.approx(m["test"]) and again["channels"]["als"]["test"] == pytest.approx(
        m["channels"]["als"]["test"]
    )


def test_itemcf_channel_scores_are_history_times_similarity() -> None:
    # items 0,1 co-occur for users 0,1; item 2 only with item 1 (user 2)
    users, items = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 0, 1, 1, 2])
    train = Interactions(users, items, np.ones(6, np.float32), None, 3, 3)
    vocab = Vocab(pa.array([10, 11, 12]), pa.array([100, 101, 102]))
    channel = build_channel(ChannelConfig.model_validate({"name": "itemcf", "top_n": 5}))
    channel.fit(train, FitContext(vocab=vocab, progress=False))
    cos01, cos12 = 2 / np.sqrt(2 * 3), 1 / np.sqrt(3 * 1)
    from recforge.recall.channels import Query

    scores = channel.scores(Query(np.array([-1]), train.binary()[[0]].tocsr()))  # type: ignore[attr-defined]
    np.testing.assert_allclose(scores[0], [cos01, cos01, cos12], rtol=1e-6)
    usercf = build_channel(ChannelConfig.model_validate({"name": "usercf"}))
    usercf.fit(train, FitContext(vocab=vocab, progress=False))
    top = usercf.recommend(Query(np.array([2]), train.binary()[[2]].tocsr(), train.binary()[[2]].tocsr()), 3)
    assert top.items[0].tolist() == [0, -1, -1]  # user 2's neighbours hold item 0; items 1, 2 are seen
    with pytest.raises(ConfigError, match="method"):
        build_channel(ChannelConfig.model_validate({"name": "itemcf", "method": "swing"})).fit(
            train, FitContext(vocab=vocab, progress=False)
        )


def test_recall_config_errors_before_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no `recall:` block"):
        pipeline.recall_train(build_config({"features": [{"name": "user_id", "kind": "id"}]}), tmp_path)
    bad = {"recall": {"channels": [{"name": "ease", "reg_weight": -1}]}}
    with pytest.raises(ConfigError, match=r"recall.channels\[0\].reg_weight"):
        pipeline.check_recall(build_config(bad))
    with pytest.raises(ConfigError, match="unique"):
        build_config({"recall": {"channels": [{"name": "ease"}, {"name": "ease"}]}})


def test_i2i_cli_writes_the_warehouse_text_form(tmp_path: Path) -> None:
    table = pa.table({"user_id": [1, 1, 2, 2, 3], "item_id": [7, 8, 7, 8, 7], "behavior": ["buy"] * 4 + ["click"]})
    pacsv.write_csv(table, tmp_path / "log.csv")
    out = tmp_path / "sim.csv"
    proc = subprocess.run(
        [*CLI, str(tmp_path / "log.csv"), "--out", str(out), "--format", "text_csv", "--set", "behaviors=[buy]"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = pacsv.read_csv(out).to_pylist()
    assert rows == [{"item_id": 7, "similar_items": "8:1.000000"}, {"item_id": 8, "similar_items": "7:1.000000"}]
    assert '"filtered_by_behavior": 1' in proc.stdout
    bad = subprocess.run(
        [*CLI, str(tmp_path / "log.csv"), "--out", str(out), "--set", "method=swng"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert bad.returncode == 2 and "method" in bad.stderr and "Traceback" not in bad.stderr


def test_item_neighbors_vote_from_the_candidate_side_by_default() -> None:
    # cos(A,B) = 1/sqrt(6), cos(B,C) = 2/sqrt(6), cos(A,C) = 0: A's top-1 is B, but B's top-1 is C
    users, items = np.array([0, 0, 1, 1, 2, 2, 3]), np.array([0, 1, 1, 2, 1, 2, 0])
    train = Interactions(users, items, np.ones(7, np.float32), None, 4, 3)
    vocab = Vocab(pa.array([0, 1, 2, 3]), pa.array(["A", "B", "C"]))
    history = train.binary()[[3]].tocsr()  # user 3 saw only A
    from recforge.recall.channels import Query

    found = {}
    for side in ("candidate", "history"):
        channel = build_channel(ChannelConfig.model_validate({"name": "itemcf", "top_n": 1, "neighbors_of": side}))
        channel.fit(train, FitContext(vocab=vocab, progress=False))
        found[side] = channel.recommend(Query(np.array([3]), history, history), 2).items[0].tolist()
    assert found["history"] == [1, -1]  # B is in A's top-1 list
    assert found["candidate"] == [-1, -1]  # A is in no candidate's top-1 list
