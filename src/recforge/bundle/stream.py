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
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recforge.bundle.bundle import MANIFEST, delta_parents, read_manifest
from recforge.bundle.verdict import GATE, passed_gate, require_passed, why_not_served
from recforge.errors import BundleError
from recforge.paths import inside

log = logging.getLogger(__name__)

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


def version_dir(stream: str | Path, name: object, *, where: str) -> Path:
    """The directory of version `name` in `stream`; every version name read or written goes through here."""
    fix = "name versions like 20261128-101500-ab12cd (see `recforge model list`)"
    return inside(stream, name, where=where, fix=fix)


def _manifest_version(bundle: Path) -> str:
    try:
        return str(read_manifest(bundle)["version"])
    except KeyError as exc:
        raise BundleError(f"{bundle / MANIFEST}: no `version` field") from exc


def versions(stream: str | Path) -> list[Path]:
    """Complete bundles in a stream directory, oldest first (hidden temp directories are skipped).

    Order is publish order (STREAM/HISTORY); versions copied in by hand sort by name before them. A
    version whose name is unsafe or which is a symlink out of the stream is a BundleError.
    """
    base = Path(stream)
    found = [
        version_dir(base, p.name, where=f"{base}: version directory")
        for p in base.iterdir()
        if not p.name.startswith(".") and p.is_dir() and is_bundle(p)
    ]
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
        target = version_dir(base, name, where=f"{pointer} names version")
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
    target = version_dir(base, name, where=f"{base}: version to serve")
    if not is_bundle(target):
        raise BundleError(f"{target} is not a complete bundle; the pointer was not moved")
    tmp = base / f".{POINTER}.{uuid.uuid4().hex[:8]}"
    tmp.write_text(name + "\n")
    os.replace(tmp, base / POINTER)


def publish(
    bundle: str | Path, stream: str | Path, name: str | None = None, verdict: dict[str, Any] | None = None
) -> Path:
    """Copy a bundle into the stream as a new version and point LATEST at it; returns its directory.

    `verdict` (`recforge.bundle.verdict.gate_verdict`) is recorded in the copy's manifest; without
    one the copy carries none, whatever the source bundle's manifest said.
    """
    source = Path(bundle)
    if not is_bundle(source):
        raise BundleError(f"{source} is not a bundle ({MANIFEST} is missing)")
    base = Path(stream)
    base.mkdir(parents=True, exist_ok=True)
    where = "version name" if name else f"{source / MANIFEST}: version"
    target = version_dir(base, name or _manifest_version(source), where=where)
    if os.path.lexists(target):
        raise BundleError(f"{target} already exists: a published version is never overwritten")
    tmp = base / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    shutil.copytree(source, tmp)
    manifest = read_manifest(tmp)
    manifest.pop(GATE, None)
    (tmp / MANIFEST).write_text(json.dumps({**manifest, **({GATE: verdict} if verdict else {})}, indent=1))
    os.replace(tmp, target)
    announce(base, target.name)
    return target


def announce(stream: str | Path, name: str) -> None:
    """Make a version already written into the stream directory the served one (HISTORY, then LATEST)."""
    base = Path(stream)
    version_dir(base, name, where=f"{base}: version to announce")
    with (base / HISTORY).open("a") as history:
        history.write(name + "\n")
    point_to(base, name)


def _chain_names(version: Path) -> list[str]:
    """`version` and the versions it is built on that exist; a broken chain is logged and cut, never followed."""
    names = [version.name]
    try:
        for parent in delta_parents(version):
            names.append(parent.name)
    except BundleError as exc:
        log.warning("prune keeps %s and the part of its chain before this problem: %s", names, exc)
    return names


def prune(stream: str | Path, keep: int) -> list[str]:
    """Delete all but the newest `keep` versions; the served version and the chains of kept deltas stay."""
    base = Path(stream)
    found = versions(base)
    kept = found[max(len(found) - keep, 0) :]
    if found:
        kept.append(current(base).path)
    needed = {name for p in kept for name in _chain_names(p)}
    doomed = [p for p in found if p.name not in needed]
    for path in doomed:
        tmp = base / f".{path.name}.deleting-{uuid.uuid4().hex[:8]}"
        os.replace(path, tmp)  # readers stop seeing it at once; the files go after
        shutil.rmtree(tmp, ignore_errors=True)
    return [p.name for p in doomed]


def rollback(stream: str | Path, to: str | None = None, force: bool = False) -> str:
    """Point LATEST at `to`, or at the newest version before the current one; returns its name.

    Only a version whose recorded gate verdict passed is served; `force` serves any (and logs so).
    """
    base = Path(stream)
    found = versions(base)
    now = current(base).path.name
    if to is None:
        names = [p.name for p in found]
        older = found[: names.index(now)] if now in names else []
        if not older:
            raise BundleError(f"{base}: {now} is the oldest version kept; there is nothing to roll back to")
        passed = older if force else [p for p in older if passed_gate(p)]
        if not passed:
            raise BundleError(
                f"{base}: none of the versions before {now} ({', '.join(p.name for p in older)}) passed the gate; "
                "there is nothing to roll back to\n  fix: roll back with --to NAME --force to serve one anyway"
            )
        target = passed[-1]
    else:
        target = version_dir(base, to, where=f"{base}: rollback --to")
        if not is_bundle(target):
            raise BundleError(f"{target} is not a complete bundle; see `recforge model list {base}`")
        if not force:
            require_passed(target)
    problem = why_not_served(target)
    if problem:
        log.warning("rolling back with --force to a version that is not known to have passed the gate: %s", problem)
    point_to(base, target.name)
    return target.name


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
