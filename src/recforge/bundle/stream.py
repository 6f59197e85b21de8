"""A model stream: a directory of versioned bundles and an atomically updated `LATEST` pointer.

    STREAM/
      LATEST                 one line: the directory name of the version to serve
      20261128-101500-ab12cd/  a bundle (manifest.json, config.yaml, features/, model/)
      20261128-102000-ef34ab/

A served path is either one bundle (its manifest names the version; rewriting it in place with
`save_bundle` swaps the whole directory atomically) or a stream. Without `LATEST` the newest complete
bundle (by version name, which sorts by creation time) is current. Readers never see a half-written
version: `publish` copies into a hidden temp directory, renames it, and only then moves the pointer.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from recforge.bundle.bundle import MANIFEST
from recforge.errors import BundleError

POINTER = "LATEST"
REJECTED = "rejected.jsonl"
HISTORY = "HISTORY"  # one published version name per line, in publish order


@dataclass(frozen=True)
class ModelVersion:
    """The bundle directory to serve now and the version its manifest names."""

    path: Path
    version: str


def is_bundle(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def _manifest_version(bundle: Path) -> str:
    try:
        return str(json.loads((bundle / MANIFEST).read_text())["version"])
    except (OSError, ValueError, KeyError) as exc:
        raise BundleError(f"{bundle}: unreadable {MANIFEST}: {exc}") from exc


def versions(stream: str | Path) -> list[Path]:
    """Complete bundles in a stream directory, oldest first (hidden temp directories are skipped).

    Order is publish order (STREAM/HISTORY); versions copied in by hand sort by name before them.
    """
    base = Path(stream)
    found = [p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".") and is_bundle(p)]
    history = base / HISTORY
    order = {n: i for i, n in enumerate(history.read_text().split())} if history.is_file() else {}
    return sorted(found, key=lambda p: (p.name in order, order.get(p.name, 0), p.name))


def current(path: str | Path) -> ModelVersion:
    """What a watcher of `path` should serve now; a clear BundleError when there is nothing to serve."""
    base = Path(path)
    if not base.is_dir():
        raise BundleError(f"{base} does not exist or is not a directory (expected a bundle or a model stream)")
    if is_bundle(base):
        return ModelVersion(base, _manifest_version(base))
    pointer = base / POINTER
    if pointer.is_file():
        name = pointer.read_text().strip()
        target = base / name
        if not is_bundle(target):
            raise BundleError(f"{pointer} names {name!r}, which is not a complete bundle in {base}")
        return ModelVersion(target, _manifest_version(target))
    found = versions(base)
    if not found:
        raise BundleError(f"{base} holds no bundle: neither {MANIFEST} nor versioned bundle directories")
    return ModelVersion(found[-1], _manifest_version(found[-1]))


def point_to(stream: str | Path, name: str) -> None:
    """Move the LATEST pointer atomically (write a temp file, then rename over the old one)."""
    base = Path(stream)
    if not is_bundle(base / name):
        raise BundleError(f"{base / name} is not a complete bundle; the pointer was not moved")
    tmp = base / f".{POINTER}.{uuid.uuid4().hex[:8]}"
    tmp.write_text(name + "\n")
    os.replace(tmp, base / POINTER)


def publish(bundle: str | Path, stream: str | Path, name: str | None = None) -> Path:
    """Copy a bundle into the stream as a new version and point LATEST at it; returns its directory."""
    source = Path(bundle)
    if not is_bundle(source):
        raise BundleError(f"{source} is not a bundle ({MANIFEST} is missing)")
    base = Path(stream)
    base.mkdir(parents=True, exist_ok=True)
    name = name or _manifest_version(source)
    target = base / name
    if target.exists():
        raise BundleError(f"{target} already exists: a published version is never overwritten")
    tmp = base / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
    shutil.copytree(source, tmp)
    os.replace(tmp, target)
    announce(base, name)
    return target


def announce(stream: str | Path, name: str) -> None:
    """Make a version already written into the stream directory the served one (HISTORY, then LATEST)."""
    base = Path(stream)
    with (base / HISTORY).open("a") as history:
        history.write(name + "\n")
    point_to(base, name)


def _parents(bundle: Path) -> list[str]:
    """The versions a delta version is built on (parent first, base last); [] for a full bundle."""
    chain: list[str] = []
    manifest = json.loads((bundle / MANIFEST).read_text())
    while manifest.get("kind") == "delta" and manifest.get("parent"):
        chain.append(str(manifest["parent"]))
        parent = bundle.parent / chain[-1]
        if not is_bundle(parent):
            break
        manifest = json.loads((parent / MANIFEST).read_text())
    return chain


def prune(stream: str | Path, keep: int) -> list[str]:
    """Delete all but the newest `keep` versions; the served version and the chains of kept deltas stay."""
    base = Path(stream)
    found = versions(base)
    kept = found[max(len(found) - keep, 0) :]
    if found:
        kept.append(current(base).path)
    needed = {p.name for p in kept} | {name for p in kept for name in _parents(p)}
    doomed = [p for p in found if p.name not in needed]
    for path in doomed:
        tmp = base / f".{path.name}.deleting-{uuid.uuid4().hex[:8]}"
        os.replace(path, tmp)  # readers stop seeing it at once; the files go after
        shutil.rmtree(tmp, ignore_errors=True)
    return [p.name for p in doomed]


def rollback(stream: str | Path, to: str | None = None) -> str:
    """Point LATEST at `to`, or at the version published before the current one; returns its name."""
    base = Path(stream)
    names = [p.name for p in versions(base)]
    now = current(base).path.name
    if to is None:
        older = names[: names.index(now)] if now in names else []
        if not older:
            raise BundleError(f"{base}: {now} is the oldest version kept; there is nothing to roll back to")
        to = older[-1]
    point_to(base, to)
    return to


def record_rejection(stream: str | Path, version: str, reasons: list[str], metrics: dict[str, object]) -> None:
    """Append a rejected version and why to STREAM/rejected.jsonl (it never enters the stream)."""
    base = Path(stream)
    base.mkdir(parents=True, exist_ok=True)
    line = {"version": version, "rejected_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "reasons": reasons, **metrics}
    with (base / REJECTED).open("a") as out:
        out.write(json.dumps(line) + "\n")


def rejections(stream: str | Path) -> list[dict[str, object]]:
    path = Path(stream) / REJECTED
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
