"""`recforge data get`: a real zip served by a local HTTP server that drops the first connection midway."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import re
import shlex
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recforge.cli import app
from recforge.data import catalog
from recforge.data.catalog import DATASETS, get_dataset
from recforge.errors import DataError
from recforge.registry import Registry

from support import REPO


class Server(http.server.ThreadingHTTPServer):
    payload = b""
    ranges: list[str | None]
    drop_first = True


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.payload` with Range support; the first response stops after half its body."""

    server: Server

    def do_GET(self) -> None:
        payload, asked = self.server.payload, self.headers.get("Range")
        self.server.ranges.append(asked)
        start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1)) if asked else 0  # type: ignore[union-attr]
        self.send_response(206 if asked else 200)
        self.send_header("Content-Length", str(len(payload) - start))
        self.end_headers()
        if self.server.drop_first and len(self.server.ranges) == 1:
            self.wfile.write(payload[start : len(payload) // 2])
            self.close_connection = True  # the socket closes with the body half sent
            return
        self.wfile.write(payload[start:])

    def log_message(self, *args: object) -> None:
        """Quiet: the test asserts on `ranges`."""


@pytest.fixture
def server(ml100k_dir: Path, tmp_path: Path) -> Iterator[Server]:
    """A real ml-100k archive (the shared RecBole files under `ml-100k/`) on a local port."""
    archive = tmp_path / "served.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for file in sorted(ml100k_dir.iterdir()):
            zipped.write(file, f"ml-100k/{file.name}")
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.payload, httpd.ranges = archive.read_bytes(), []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def local(server: Server, checksum: str | None = None) -> catalog.Dataset:
    """The registry's ml-100k entry pointed at the test server (and the served archive's md5)."""
    port = server.server_address[1]
    digest = checksum or hashlib.md5(server.payload).hexdigest()
    return dataclasses.replace(
        DATASETS.get("ml-100k"), url=f"http://127.0.0.1:{port}/ml-100k.zip", checksum=("md5", digest)
    )


def test_get_resumes_after_a_dropped_connection_and_verifies(server: Server, tmp_path: Path) -> None:
    fetched = get_dataset(local(server), tmp_path / "data", progress=False)
    half = len(server.payload) // 2
    assert server.ranges == [None, f"bytes={half}-"]
    assert fetched.archive.read_bytes() == server.payload
    assert sorted(p.name for p in fetched.folder.iterdir()) == ["ml-100k.inter", "ml-100k.item", "ml-100k.user"]
    get_dataset(local(server), tmp_path / "data", progress=False)  # already there and verified: no request
    assert len(server.ranges) == 2


def test_a_checksum_mismatch_keeps_nothing(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"md5 [0-9a-f]{32} does not match the pinned 0{32}; the download was deleted"):
        get_dataset(local(server, "0" * 32), tmp_path / "data", progress=False)
    assert list((tmp_path / "data").iterdir()) == []


def readme_commands(prefix: str) -> list[str]:
    """The README's "your own data" lines that start with `prefix`."""
    return [line.split("  #")[0] for line in (REPO / "README.md").read_text().splitlines() if line.startswith(prefix)]


def test_data_get_command_then_the_readme_movielens_commands(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry: Registry[catalog.Dataset] = Registry("dataset")
    registry.register("ml-100k")(local(server))
    monkeypatch.setattr(catalog, "DATASETS", registry)
    get = readme_commands("recforge data get ml-100k")[0].replace("--to data", f"--to {tmp_path / 'data'}")
    result = CliRunner().invoke(app, shlex.split(get)[1:])
    assert result.exit_code == 0, result.output
    assert "licence: MovieLens (GroupLens Research" in result.output and "(md5 verified)" in result.output
    assert server.ranges[1] is not None  # it resumed
    check = readme_commands("recforge config check examples/movielens_deepfm.yaml --set data.path=data/")
    train = readme_commands("recforge train examples/movielens_deepfm.yaml --set data.path=data/")
    assert len(check) == 1 and len(train) == 1
    out = ""
    for line in check + train:
        args = shlex.split(line.replace("data.path=data/", f"data.path={tmp_path}/data/"))[1:]
        args = [a.replace("runs/", f"{tmp_path}/runs/") for a in args] + ["--set", "train.epochs=1"]
        proc = subprocess.run([sys.executable, "-m", "recforge", *args], capture_output=True, text=True, cwd=REPO)
        assert proc.returncode == 0, (line, proc.stdout, proc.stderr)
        out += proc.stdout
    assert "data.path: read {'behavior': 100000, 'users': 943, 'items': 1682} rows" in out
    assert (tmp_path / "runs" / "ml" / "bundle").is_dir()
