"""A misspelled config key gets a "did you mean"; a bad `--set` key is reported against `--set` (issue 15, defect 9)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import small_synthetic


def config_check(tree: dict[str, Any], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(tree))
    return subprocess.run(
        [sys.executable, "-m", "recforge", "config", "check", "p.yaml", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )


def misspelled(path: str) -> dict[str, Any]:
    """The small config with the key at dotted `path` renamed to the misspelling in its last part."""
    tree = small_synthetic()
    *parents, (old, new) = [p.split(">") if ">" in p else p for p in path.split(".")]
    node = tree
    for part in parents:
        node = node[part]
    node[new] = node.pop(old)
    return tree


@pytest.mark.parametrize(
    ("rename", "line"),
    [
        (
            "embedding_dim>embeding_dim",
            "p.yaml: embeding_dim: unknown key 'embeding_dim' (did you mean 'embedding_dim'?)",
        ),
        ("train.epochs>epochz", "p.yaml: train.epochz: unknown key 'epochz' (did you mean 'epochs'?)"),
        ("model.deep.hidden>hiden", "model.deep.hiden: unknown key 'hiden' (did you mean 'hidden'?)"),
    ],
)
def test_a_misspelled_key_gets_the_nearest_known_one(rename: str, line: str, tmp_path: Path) -> None:
    proc = config_check(misspelled(rename), tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"error: {line}"]


@pytest.mark.parametrize(
    ("assignment", "line"),
    [
        ("train.epochz=3", "--set train.epochz=3: unknown key 'epochz' (did you mean 'epochs'?)"),
        ("model.deep.hiden=[8]", "--set model.deep.hiden=[8]: unknown key 'hiden' (did you mean 'hidden'?)"),
    ],
)
def test_a_bad_set_key_is_reported_against_the_set_argument(assignment: str, line: str, tmp_path: Path) -> None:
    proc = config_check(small_synthetic(), tmp_path, "--set", assignment)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"error: {line}"]


def test_a_bad_set_key_beside_a_bad_file_key_names_each_origin(tmp_path: Path) -> None:
    proc = config_check(misspelled("train.epochs>epochz"), tmp_path, "--set", "train.batch_sise=8")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: p.yaml: config: 2 problem(s):",
        "  train.epochz: unknown key 'epochz' (did you mean 'epochs'?)",
        "  --set train.batch_sise=8: unknown key 'batch_sise' (did you mean 'batch_size'?)",
    ]
