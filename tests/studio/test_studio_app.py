"""The Studio app in process over small real directories (no training): rollback is refused without the admin
token, unsafe names never reach the file system, a malformed pipeline history is a clear error, odd values are
escaped. The browser test covers the pages over a trained world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recforge.bundle.verdict import gate_verdict
from recforge.studio.app import create_studio
from recforge.studio.settings import Studio

from support import recforge

VERSIONS = ("20261201-000000-aaaaaa", "20261202-000000-bbbbbb")


@pytest.fixture
def stream(tmp_path: Path) -> Path:
    """A stream of two versions that passed the gate (manifests only: the stream page never loads weights)."""
    root = tmp_path / "stream"
    for name in VERSIONS:
        (root / name).mkdir(parents=True)
        manifest = {"version": name, "gate": gate_verdict(True, [], {"auc": 0.7}, judge="test")}
        (root / name / "manifest.json").write_text(json.dumps(manifest))
    (root / "HISTORY").write_text("\n".join(VERSIONS) + "\n")
    (root / "LATEST").write_text(VERSIONS[1] + "\n")
    return root


def test_without_a_token_rollback_is_disabled_and_the_post_is_403(stream: Path) -> None:
    client = TestClient(create_studio(Studio(stream=stream)))
    page = client.get("/stream").text
    assert f'data-testid="rollback-{VERSIONS[0]}" disabled' in page
    refused = client.post("/stream/rollback", data={"to": VERSIONS[0], "token": ""})
    assert refused.status_code == 403 and "rollback is off" in refused.text
    assert (stream / "LATEST").read_text().strip() == VERSIONS[1]


def test_with_a_token_only_the_right_one_rolls_back(stream: Path) -> None:
    client = TestClient(create_studio(Studio(stream=stream, admin_token="t0ken")))
    assert client.post("/stream/rollback", data={"to": VERSIONS[0], "token": "nope"}).status_code == 403
    assert (stream / "LATEST").read_text().strip() == VERSIONS[1]
    done = client.post("/stream/rollback", data={"to": VERSIONS[0], "token": "t0ken"})
    assert done.status_code == 200 and f"now serving {VERSIONS[0]}" in done.text
    assert (stream / "LATEST").read_text().strip() == VERSIONS[0]
    unsafe = client.post("/stream/rollback", data={"to": "../../etc", "token": "t0ken"})
    assert unsafe.status_code == 404 and "is not a safe name" in unsafe.text


def test_unsafe_run_names_are_listed_as_skipped_and_never_opened(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for name in ("good-run", "bad <name>"):
        (runs / name).mkdir(parents=True)
        (runs / name / "config.yaml").write_text("name: '<script>alert(1)</script>'\n")
    client = TestClient(create_studio(Studio(runs=runs)))
    page = client.get("/").text
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "skipped (unsafe directory names): bad &lt;name&gt;" in page
    assert client.get("/runs/bad%20%3Cname%3E").status_code == 404
    assert client.get("/runs/..%2F..%2Fetc").status_code == 404
    assert client.get("/compare?run=good-run").status_code == 400  # two runs, or a clear message


def test_a_malformed_pipeline_history_line_is_named(tmp_path: Path) -> None:
    (tmp_path / "history.jsonl").write_text('{"date": "2026-12-01", "step": "train"}\n')
    answer = TestClient(create_studio(Studio(pipeline=tmp_path))).get("/pipeline")
    assert answer.status_code == 422 and "history.jsonl:1: missing" in answer.text


def test_a_service_that_is_down_is_named_on_the_page(tmp_path: Path) -> None:
    from recforge.studio.service_client import ServiceClient

    studio = Studio(service=ServiceClient("http://127.0.0.1:9", timeout=2))
    answer = TestClient(create_studio(studio)).get("/try?user=5")
    assert answer.status_code == 502 and "cannot reach the service at http://127.0.0.1:9/recommend" in answer.text


def test_recforge_ui_refuses_a_missing_directory_in_one_line(tmp_path: Path) -> None:
    proc = recforge("ui", "--runs", tmp_path / "nope", check=False)
    assert proc.returncode == 2
    assert "--runs" in proc.stderr and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
