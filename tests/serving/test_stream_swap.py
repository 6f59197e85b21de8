"""Model streams and the hot-swap watcher on real bundles: pointer moves, new versions, broken versions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from recforge.bundle import Bundle, load_bundle
from recforge.bundle.stream import POINTER, current, point_to, publish, versions
from recforge.config import build_config
from recforge.errors import BundleError
from recforge.pipeline.rank import train
from recforge.serving.swap import ModelSlot, ModelWatcher

from support import small_synthetic


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rank")
    cfg = build_config(small_synthetic(epochs=1, max_steps=5))
    return train(cfg, out).bundle


def renamed(bundle: Path, root: Path, version: str) -> Path:
    """A copy of `bundle` whose manifest names another version (what a retrain would write)."""
    copy = root / f"src-{version}"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["version"] = version
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_publish_moves_the_pointer_and_never_overwrites(bundle: Path, tmp_path: Path) -> None:
    stream = tmp_path / "stream"
    first = publish(renamed(bundle, tmp_path, "v1"), stream)
    assert current(stream).version == "v1" and current(stream).path == first
    publish(renamed(bundle, tmp_path, "v2"), stream)
    assert current(stream).version == "v2"
    assert [p.name for p in versions(stream)] == ["v1", "v2"]
    point_to(stream, "v1")  # roll back
    assert current(stream).version == "v1"
    with pytest.raises(BundleError, match="never overwritten"):
        publish(renamed(bundle, tmp_path, "v1b"), stream, name="v1")
    with pytest.raises(BundleError, match="not a complete bundle"):
        point_to(stream, "v9")
    assert (stream / POINTER).read_text().strip() == "v1"


def test_current_without_pointer_takes_newest_and_explains_empty_dirs(bundle: Path, tmp_path: Path) -> None:
    stream = tmp_path / "s"
    stream.mkdir()
    with pytest.raises(BundleError, match="holds no bundle"):
        current(stream)
    shutil.copytree(renamed(bundle, tmp_path, "20260101-a"), stream / "20260101-a")
    shutil.copytree(renamed(bundle, tmp_path, "20260102-b"), stream / "20260102-b")
    (stream / ".20260103-c.tmp-1234").mkdir()  # a publish in progress is invisible
    assert current(stream).version == "20260102-b"
    assert current(bundle).path == bundle  # a plain bundle serves itself
    with pytest.raises(BundleError, match="does not exist"):
        current(tmp_path / "nope")


def test_watcher_swaps_new_versions_and_keeps_serving_through_a_broken_one(bundle: Path, tmp_path: Path) -> None:
    stream = tmp_path / "stream"
    publish(renamed(bundle, tmp_path, "v1"), stream)
    slot: ModelSlot[Bundle] = ModelSlot(load_bundle(current(stream).path))
    failures: list[str] = []
    watcher = ModelWatcher(
        stream, slot, lambda v: load_bundle(v.path), on_failure=lambda version, _exc: failures.append(version)
    )
    assert watcher.check() is False  # nothing new
    publish(renamed(bundle, tmp_path, "v2"), stream)
    assert watcher.check() is True and slot.current.version == "v2"

    broken = renamed(bundle, tmp_path, "v3")
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    publish(broken, stream)
    assert watcher.check() is False
    assert slot.current.version == "v2", "a version that fails to load must not replace the served one"
    assert failures == ["v3"] and watcher.events.failures == 1 and "v3" in str(watcher.events.last_error)
    assert watcher.check() is False and watcher.events.failures == 1, "a failed version is reported once"

    publish(renamed(bundle, tmp_path, "v4"), stream)
    assert watcher.check() is True and slot.current.version == "v4"
    assert watcher.events.swaps == 2 and watcher.events.history == ["v1", "v2", "v4"]
