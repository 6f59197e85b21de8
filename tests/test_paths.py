"""recforge.paths: the one place a name read from a file becomes a path (charset, containment, chain walks)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recforge.errors import BundleError
from recforge.paths import inside, parent_dirs, safe_name

PLAIN = ["20261128-101500-ab12cd", "20261128-101500-ab12cd+d3-0f1e2d", "v1", "a..b", "x" * 128]


@pytest.mark.parametrize("name", PLAIN)
def test_plain_names_are_accepted(name: str) -> None:
    assert safe_name(name, where="version") == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "a/b", "/abs", ".hidden", "-flag", "a b", "x" * 129, "a\\b", "a\x00b", 7, None]
)
def test_unsafe_names_are_refused_with_the_rule(name: object) -> None:
    with pytest.raises(BundleError, match=r"version .* is not a safe name: a name is 1-128 characters .*\n  fix: "):
        safe_name(name, where="version")


def test_a_symlink_inside_the_root_is_followed_and_one_outside_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "real").mkdir(parents=True)
    outside.mkdir()
    os.symlink(root / "real", root / "alias")
    os.symlink(outside, root / "escape")
    os.symlink(root, root / "self")
    assert inside(root, "alias", where="version") == root / "alias"
    for name in ("escape", "self"):
        with pytest.raises(BundleError, match=rf"version '{name}': .* resolves to .*, outside .*root"):
            inside(root, name, where="version")


def test_a_parent_chain_stops_at_its_length_cap(tmp_path: Path) -> None:
    parents = {"d4": "d3", "d3": "d2", "d2": "d1", "d1": None}
    walk = parent_dirs(tmp_path, "d4", lambda p: parents[p.name], where="d4", max_length=5)
    assert [p.name for p in walk] == ["d3", "d2", "d1"]
    with pytest.raises(BundleError, match="d4: the parent chain is longer than 2 versions"):
        list(parent_dirs(tmp_path, "d4", lambda p: parents[p.name], where="d4", max_length=2))
