"""The main job on embedded defaults, through the real CLI: it learns the synthetic world's true CTR."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq

from recforge.data import oracle_auc

from support import REPO


def test_quickstart_reaches_the_true_click_probability_auc(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "recforge", "quickstart", "--out", str(tmp_path / "qs")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "qs" / "metrics.json").read_text())
    ceiling = oracle_auc(pq.read_table(tmp_path / "qs" / "samples" / "test.parquet"))
    # Done-when of the core issue: DeepFM within 0.01 AUC of the generator's true click probability.
    assert metrics["test"]["auc"] >= ceiling - 0.01, (metrics["test"], ceiling)
    assert "test: auc=" in proc.stdout and proc.stdout.count("top items for user") == 3
    assert (tmp_path / "qs" / "bundle" / "manifest.json").exists()


LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (INFO|WARNING|ERROR) ([\w.]+): ")


def test_without_a_terminal_progress_is_a_log_line_every_few_seconds_and_nothing_else(tmp_path: Path) -> None:
    """As CI runs it (pipes, no terminal), with an `implicit` ALS channel added: no bars, no foreign warnings."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    args = [
        *("quickstart", "--out", str(tmp_path / "qs")),
        *("--set", "data.synthetic.n_impressions=300000", "--set", "recall.channels[2]={name: als, factors: 8}"),
    ]
    started = datetime.now()
    proc = subprocess.run(
        [sys.executable, "-m", "recforge", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=900
    )
    ended = datetime.now()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\r" not in proc.stderr and "%|" not in proc.stderr  # no progress bar drawn into the log
    lines = proc.stderr.splitlines()
    parsed = [LOG_LINE.match(line) for line in lines]
    assert all(parsed), [line for line, m in zip(lines, parsed, strict=True) if not m][:5]  # one logging path
    foreign = [line for line, m in zip(lines, parsed, strict=True) if m and not m.group(3).startswith("recforge")]
    assert foreign == []  # no third-party warning (implicit's BLAS threads, tqdm, ...)
    times = [started] + [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f") for m in parsed if m] + [ended]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert max(gaps) <= 10, (max(gaps), proc.stderr[-3000:])
    stages = {line.split(": ")[1] for line in lines if " recforge.progress: " in line}
    for stage in ("samples", "features", "train", "evaluate test", "recall channel als", "recall eval test"):
        assert stage in stages, stages
