"""The Studio in a real browser (headless Debian chromium via Playwright) against a real run directory, model
stream, live `recforge serve` and `recforge ui`: every page loads, the numbers shown equal the files and the
service's answers, and rollback moves the version the service serves. Screenshots go to the artifacts dir."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from world import ODD_NAME, TOKEN, World

from recforge.bundle import load_bundle
from recforge.bundle.drift_status import read_drift_windows
from recforge.bundle.stream import current
from recforge.online.drift import distribution_shift
from recforge.pipeline.ev_inspect import inspect_embedding

from support import Server

pytestmark = pytest.mark.slow


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    yield context.new_page()
    context.close()


def shot(tab: Any, artifacts: Path, name: str) -> None:
    tab.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def text(tab: Any, testid: str) -> str:
    return str(tab.get_by_test_id(testid).inner_text()).strip()


def metrics(world: World, run: str) -> dict[str, Any]:
    return dict(json.loads((world.runs / run / "metrics.json").read_text()))


def test_runs_page_shows_each_runs_metrics_and_the_odd_name_as_text(
    tab: Any, studio: str, world: World, artifacts: Path
) -> None:
    tab.goto(studio + "/")
    for run in ("deepfm-a", "deepfm-b"):
        for split, name in (("valid", "auc"), ("valid", "logloss"), ("test", "auc")):
            assert text(tab, f"{run}:{split}.{name}") == f"{metrics(world, run)[split][name]:.4f}"
    assert text(tab, "deepfm-a:name") == ODD_NAME  # shown as text: the markup in it was escaped
    assert tab.locator("table b").count() == 0
    shot(tab, artifacts, "runs")
    tab.get_by_label("pick deepfm-a").check()
    tab.get_by_label("pick deepfm-b").check()
    tab.get_by_role("button", name="compare two").click()
    for split, name in (("valid", "auc"), ("test", "logloss")):
        row = [c.strip() for c in tab.get_by_test_id(f"{split}.{name}:deepfm-a").all_inner_texts()]
        assert row == [f"{metrics(world, 'deepfm-a')[split][name]:.4f}"]
        assert text(tab, f"{split}.{name}:deepfm-b") == f"{metrics(world, 'deepfm-b')[split][name]:.4f}"
    evals = [json.loads(line) for line in (world.runs / "deepfm-a" / "evals.jsonl").read_text().splitlines()]
    curves = {k for r in evals for k in r} - {"epoch", "step"}
    assert tab.locator("svg[role=img]").count() == len(curves) == 4  # one chart per metric in evals.jsonl
    assert tab.get_by_text("embedding_dim").count() >= 1  # the config diff names what differs
    shot(tab, artifacts, "compare")
    tab.goto(studio + "/runs/deepfm-a/report")
    assert tab.title().startswith("recforge run:")
    shot(tab, artifacts, "report")


def test_stream_page_shows_versions_verdicts_rejection_drift_and_served_version(
    tab: Any, studio: str, world: World, service: Server, artifacts: Path
) -> None:
    tab.goto(studio + "/stream")
    for name in world.versions:
        assert text(tab, f"{name}:kind") == "full"
        assert text(tab, f"{name}:gate") == "passed"
    assert text(tab, "served") == service.get("/v2/health/ready").json()["version"] == world.versions[-1]
    assert tab.get_by_text("auc 0.5012 < min_auc 0.6").count() == 1
    windows = read_drift_windows(world.stream)
    assert len(windows) == 3
    for window in windows:
        assert text(tab, f"{window['window']}:rows") == str(window["rows"])
    shot(tab, artifacts, "stream")


def test_embeddings_page_equals_the_served_bundles_tables(tab: Any, studio: str, world: World, artifacts: Path) -> None:
    tab.goto(studio + "/embeddings")
    bundle = load_bundle(current(world.stream).path)
    _, dynamic = inspect_embedding(bundle.model, bundle.features, "user_id")
    _, static = inspect_embedding(bundle.model, bundle.features, "item_id")
    assert text(tab, "user_id:kind") == "dynamic"
    assert text(tab, "user_id:rows") == str(dynamic["rows"])
    assert text(tab, "user_id:ids_seen") == str(dynamic["ids_seen"])
    assert text(tab, "user_id:evicted") == "not counted"
    assert text(tab, "item_id:vocab_size") == str(static["vocab_size"])
    shot(tab, artifacts, "embeddings")


def test_features_page_psi_and_missing_counts_equal_the_samples(
    tab: Any, studio: str, world: World, artifacts: Path
) -> None:
    tab.goto(studio + "/features")
    train = pq.read_table(world.runs / "deepfm-a" / "samples" / "train.parquet")
    recent = pq.read_table(world.runs / "deepfm-a" / "samples" / "test.parquet")
    for name in ("age", "price", "category_id", "user_id"):
        assert text(tab, f"{name}:PSI") == f"{distribution_shift(train[name], recent[name]).psi:.4f}"
        assert text(tab, f"{name}:missing (train)") == str(train[name].null_count)
    shot(tab, artifacts, "features")


def test_try_a_user_shows_channels_merged_and_the_services_ranking(
    tab: Any, studio: str, service: Server, artifacts: Path
) -> None:
    tab.goto(studio + "/try")
    tab.get_by_label("user id").fill("5")
    tab.get_by_role("button", name="recommend").click()
    answer = service.post("/recommend", json={"user_id": 5, "k": 10, "explain": True}).json()
    shown = [text(tab, f"ranked-{n + 1}:item") for n in range(10)]
    assert shown == [str(i["item_id"]) for i in answer["items"]]
    assert text(tab, "ranked-1:score") == f"{answer['items'][0]['score']:.4f}"
    for channel, found in answer["explain"]["channels"].items():
        assert tab.get_by_text(f"recall channel {channel}: {len(found)} candidates").count() == 1
    assert tab.get_by_text(f"merged: {len(answer['explain']['merged'])} candidates").count() == 1
    assert float(text(tab, "timing:total ms")) > 0
    shot(tab, artifacts, "try-user")
    tab.get_by_label("item id").fill("7")
    tab.get_by_role("button", name="similar items").click()
    assert tab.get_by_text("recall channel itemcf").count() == 1
    shot(tab, artifacts, "similar-items")


def test_pipeline_page_counts_the_history(tab: Any, studio: str, artifacts: Path) -> None:
    tab.goto(studio + "/pipeline")
    counts = {"ok": "2", "failed": "1", "skipped": "1", "days": "2", "retries": "1"}
    assert {k: text(tab, f"pipeline:{k}") for k in counts} == counts
    assert tab.get_by_text("disk full <tmp>").count() == 1
    shot(tab, artifacts, "pipeline")


def test_rollback_needs_the_token_and_moves_the_served_version(
    tab: Any, studio: str, world: World, service: Server, artifacts: Path
) -> None:
    older, newest = world.versions
    tab.goto(studio + "/stream")
    assert tab.get_by_test_id(f"rollback-{newest}").count() == 0  # the served one is not offered
    tab.on("dialog", lambda dialog: dialog.accept())
    tab.get_by_label("admin token").fill("wrong")
    tab.get_by_test_id(f"rollback-{older}").click()
    assert tab.get_by_text("wrong admin token").count() == 1
    assert (world.stream / "LATEST").read_text().strip() == newest
    tab.goto(studio + "/stream")
    tab.get_by_label("admin token").fill(TOKEN)
    tab.get_by_test_id(f"rollback-{older}").click()
    assert text(tab, "rolled-back") == f"now serving {older} (LATEST moved)"
    deadline = time.monotonic() + 30
    while service.get("/v2/health/ready").json()["version"] != older and time.monotonic() < deadline:
        time.sleep(0.1)
    tab.goto(studio + "/stream")
    assert text(tab, "served") == older == service.get("/v2/health/ready").json()["version"]
    shot(tab, artifacts, "stream-after-rollback")
