"""A busy port or a Redis that is down is one error line and a fix, exit 1 (issue 15, defect 9)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from support import REPO


def recforge_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recforge", *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=300
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_on_a_busy_port_says_so_before_loading_anything(busy_port: int, tmp_path: Path) -> None:
    proc = recforge_cli("serve", tmp_path / "models", "--port", busy_port)
    assert proc.returncode == 1
    assert proc.stdout == ""  # no "serving ... on :PORT" banner
    assert proc.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{busy_port}: Address already in use",
        "  fix: --port N or stop the other process",
    ]


def test_stream_produce_to_a_redis_that_is_down_names_the_url(tmp_path: Path) -> None:
    pq.write_table(pa.table({"user_id": [1, 2], "timestamp": [1, 2]}), tmp_path / "log.parquet")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0?stream=events"
    proc = recforge_cli("stream", "produce", tmp_path / "log.parquet", "--to", url)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith(f"error: {url}: cannot reach Redis at 127.0.0.1:{port} (") and "refused" in lines[0]
    assert lines[1] == "  fix: start redis-server there, or point the URL at a running one"
