"""A model stream cannot be steered outside itself by a name, and rollback serves only versions that passed the gate.

Every name read from a manifest, a pointer or the command line (version, LATEST, rollback --to, a delta's
parent, the array files of features.json) is one safe path component that stays inside its root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from recforge.bundle import load_bundle
from recforge.bundle.stream import POINTER, announce, current, point_to, prune, publish, rollback, versions
from recforge.config import build_config
from recforge.config.gate import GateConfig
from recforge.errors import BundleError
from recforge.features import FeatureSet
from recforge.pipeline.rank import RunResult, train
from recforge.train.gate import publish_gated

from support import REPO, small_synthetic

PASSED = {"passed": True, "reasons": [], "metrics": {"auc": 0.71}, "judge": "test"}
FAILED = {"passed": False, "reasons": ["auc 0.5012 < floor 0.6"], "metrics": {"auc": 0.5012}, "judge": "test"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return train(build_config(small_synthetic(epochs=1, max_steps=5)), tmp_path_factory.mktemp("rank"))


def with_manifest(bundle: Path, copy: Path, **fields: Any) -> Path:
    """A copy of `bundle` whose manifest has `fields` changed (what a hostile or broken writer leaves)."""
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest.update(fields)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def published(bundle: Path, stream: Path, name: str, verdict: dict[str, Any] | None = None) -> Path:
    """Publish `bundle` as version `name`; `verdict` is then recorded in its manifest as a gate would."""
    target = publish(bundle, stream, name=name)
    if verdict is not None:
        manifest = json.loads((target / "manifest.json").read_text())
        (target / "manifest.json").write_text(json.dumps({**manifest, "gate": verdict}))
    return target


def files_under(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recforge", "model", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300)  # fmt: skip


@pytest.mark.parametrize("version", ["../../X", "ABSOLUTE"])
def test_publish_refuses_a_manifest_version_outside_the_stream(run: RunResult, tmp_path: Path, version: str) -> None:
    version = str(tmp_path / "abs-target") if version == "ABSOLUTE" else version
    stream = tmp_path / "a" / "b" / "stream"
    published(run.bundle, stream, "v1", PASSED)
    bad = with_manifest(run.bundle, tmp_path / "bad", version=version)
    before = files_under(tmp_path)
    with pytest.raises(BundleError, match=r"manifest.json: version .* is not a safe name"):
        publish(bad, stream)
    assert files_under(tmp_path) == before, "nothing is written anywhere"
    assert current(stream).path.name == "v1" and (stream / POINTER).read_text() == "v1\n"


def test_model_publish_cli_refuses_a_traversing_version_before_judging(run: RunResult, tmp_path: Path) -> None:
    stream = tmp_path / "a" / "stream"
    bad = with_manifest(run.bundle, tmp_path / "bad", version="../../X")
    out = cli("publish", str(bad), str(stream), "--holdout", str(run.samples.test))
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith("error: ") and "'../../X' is not a safe name" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "X").exists() and not (stream / POINTER).exists()


def test_publish_gated_records_the_verdict_in_the_version(run: RunResult, tmp_path: Path) -> None:
    stream = tmp_path / "stream"
    holdout = pq.read_table(run.samples.test)
    result = publish_gated(run.bundle, stream, holdout, GateConfig())
    assert result.passed and result.published is not None
    verdict = json.loads((result.published / "manifest.json").read_text())["gate"]
    assert verdict["passed"] is True and verdict["reasons"] == [] and verdict["judge"] == "recforge model publish"
    assert verdict["metrics"] == result.metrics and verdict["serving"] == {}
    assert "gate" not in json.loads((run.bundle / "manifest.json").read_text()), "the source bundle is left as it was"


def test_publish_drops_a_verdict_the_source_bundle_claims(run: RunResult, tmp_path: Path) -> None:
    forged = with_manifest(run.bundle, tmp_path / "forged", version="v9", gate=PASSED)
    assert "gate" not in json.loads((publish(forged, tmp_path / "stream") / "manifest.json").read_text())


def test_rollback_to_a_name_outside_the_stream_is_refused(run: RunResult, tmp_path: Path) -> None:
    stream = tmp_path / "stream"
    published(run.bundle, stream, "v1", PASSED)
    published(run.bundle, stream, "v2", PASSED)
    shutil.copytree(run.bundle, tmp_path / "b1")  # a complete bundle beside the stream
    with pytest.raises(BundleError, match=r"rollback --to '\.\./b1' is not a safe name"):
        rollback(stream, "../b1")
    with pytest.raises(BundleError, match="is not a safe name"):
        point_to(stream, "../b1")
    assert (stream / POINTER).read_text() == "v2\n"
    out = cli("rollback", str(stream), "--to", "../b1")
    assert out.returncode == 1 and "'../b1' is not a safe name" in out.stderr and "Traceback" not in out.stderr
    assert (stream / POINTER).read_text() == "v2\n"


def test_a_symlink_out_of_the_stream_is_refused(run: RunResult, tmp_path: Path) -> None:
    stream = tmp_path / "stream"
    published(run.bundle, stream, "v1", PASSED)
    outside = with_manifest(run.bundle, tmp_path / "outside", version="evil", gate=PASSED)
    os.symlink(outside, stream / "evil")
    with pytest.raises(BundleError, match=r"resolves to .*outside, outside .*stream"):
        point_to(stream, "evil")
    with pytest.raises(BundleError, match="outside"):
        versions(stream)
    (stream / POINTER).write_text("evil\n")  # a pointer written by hand
    with pytest.raises(BundleError, match=r"LATEST names version 'evil'.*outside"):
        current(stream)


def test_latest_naming_a_path_outside_is_refused(run: RunResult, tmp_path: Path) -> None:
    stream = tmp_path / "stream"
    published(run.bundle, stream, "v1", PASSED)
    shutil.copytree(run.bundle, tmp_path / "b1")
    (stream / POINTER).write_text("../b1\n")
    with pytest.raises(BundleError, match=r"LATEST names version '\.\./b1' is not a safe name"):
        current(stream)


def test_rollback_goes_only_to_versions_that_passed_the_gate(
    run: RunResult, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stream = tmp_path / "stream"
    published(run.bundle, stream, "good", PASSED)
    published(run.bundle, stream, "failed", FAILED)
    published(run.bundle, stream, "old")  # published before verdicts were recorded
    published(run.bundle, stream, "now", PASSED)
    with pytest.raises(BundleError, match=r"failed the gate \(auc 0\.5012 < floor 0\.6\).*\n  fix: .*--force"):
        rollback(stream, "failed")
    with pytest.raises(BundleError, match=r"no gate verdict is recorded.*\n  fix: .*--force"):
        rollback(stream, "old")
    assert current(stream).path.name == "now"
    assert rollback(stream) == "good", "the default skips versions that did not pass"
    assert rollback(stream, "failed", force=True) == "failed"
    assert "not known to have passed the gate" in caplog.text and "failed the gate" in caplog.text
    assert current(stream).path.name == "failed"


def test_rollback_cli_force_serves_a_failed_version_and_says_so(run: RunResult, tmp_path: Path) -> None:
    stream = tmp_path / "stream"
    published(run.bundle, stream, "failed", FAILED)
    published(run.bundle, stream, "now", PASSED)
    refused = cli("rollback", str(stream))
    assert refused.returncode == 1 and "none of the versions before now (failed) passed the gate" in refused.stderr
    forced = cli("rollback", str(stream), "--to", "failed", "--force")
    assert forced.returncode == 0 and forced.stdout == "now serving failed\n", forced.stderr
    assert "failed the gate (auc 0.5012 < floor 0.6)" in forced.stderr
    assert (stream / POINTER).read_text() == "failed\n"


def delta(stream: Path, name: str, parent: str, base: Path) -> Path:
    """A delta version named `name` built on `parent` (the manifest of a real bundle, kind delta)."""
    return with_manifest(base, stream / name, version=name, kind="delta", parent=parent)


def test_a_delta_parent_outside_the_stream_is_refused(run: RunResult, tmp_path: Path) -> None:
    stream = tmp_path / "stream"
    published(run.bundle, stream, "v1", PASSED)
    shutil.copytree(run.bundle, tmp_path / "x")  # what `../x` would reach
    delta(stream, "d1", "../x", run.bundle)
    with pytest.raises(BundleError, match=r"d1/manifest.json parent '\.\./x' is not a safe name"):
        load_bundle(stream / "d1")


@pytest.mark.parametrize("chain", [{"d1": "d1"}, {"d1": "d2", "d2": "d1"}], ids=["self", "two-cycle"])
def test_a_looping_delta_chain_is_a_bundle_error_and_prune_ends(
    run: RunResult, tmp_path: Path, chain: dict[str, str]
) -> None:
    stream = tmp_path / "stream"
    published(run.bundle, stream, "v1", PASSED)
    for name, parent in chain.items():
        delta(stream, name, parent, run.bundle)
        announce(stream, name)
    loop = " -> ".join(["d1", *(["d2"] if len(chain) == 2 else []), "d1"])
    with pytest.raises(BundleError, match=f"the parent chain loops \\({loop}\\)"):
        load_bundle(stream / "d1")
    pruned: list[list[str]] = []
    worker = threading.Thread(target=lambda: pruned.append(prune(stream, keep=1)), daemon=True)
    worker.start()
    worker.join(timeout=60)  # a safety net only: a fixed prune returns in milliseconds
    assert not worker.is_alive(), "prune loops forever on a looping chain"
    assert pruned == [["v1"]] and sorted(p.name for p in versions(stream)) == sorted(chain)


def test_features_json_array_names_must_stay_in_the_bundle(run: RunResult, tmp_path: Path) -> None:
    bundle = shutil.copytree(run.bundle, tmp_path / "b" / "bundle")
    state = bundle / "features" / "features.json"
    doc = json.loads(state.read_text())
    feature, files = next((name, files) for name, files in doc["arrays"].items() if files)
    key = next(iter(files))
    shutil.copy(bundle / "features" / files[key], tmp_path / "b" / "x")  # a real array file, two levels up
    files[key] = "../../x"
    state.write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=rf"features.json: arrays.{feature}.{key} '\.\./\.\./x' is not a safe name"):
        FeatureSet.load(bundle / "features")
