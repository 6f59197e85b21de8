"""`recforge serve --ui`: the Studio mounted at /ui of the live service, asking that very service."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from world import World

from support import REPO, free_port, recforge

pytestmark = pytest.mark.slow


def test_serve_mounts_the_studio_at_ui_over_its_own_stream(world: World) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "recforge", "serve", str(world.stream), "--config", str(world.serving)]
    cmd += ["--port", str(port), "--ui", "--ui-runs", str(world.runs), "--ui-pipeline", str(world.pipeline)]
    process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(url + "/v2/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        served = httpx.get(url + "/v2/health/ready", timeout=30).json()["version"]
        stream = httpx.get(url + "/ui/stream", timeout=30)
        assert stream.status_code == 200 and f'data-testid="served">{served}<' in stream.text
        assert 'href="/ui/embeddings"' in stream.text  # links stay under the mount
        answer = httpx.get(url + "/ui/try?user=5&k=3", timeout=30).text
        assert answer.count('data-testid="ranked-') == 3 * 4  # 3 rows x (rank, item, score, channels)
        refused = httpx.post(url + "/ui/stream/rollback", data={"to": world.versions[0], "token": "x"}, timeout=30)
        assert refused.status_code == 403  # no RECFORGE_ADMIN_TOKEN in this process: rollback is off
        assert httpx.get(url + "/ui/pipeline", timeout=30).status_code == 200
    finally:
        process.terminate()
        process.wait(30)


def test_the_studio_needs_a_single_worker_server(world: World) -> None:
    proc = recforge(
        "serve",
        world.stream,
        "--config",
        world.serving,
        "--port",
        free_port(),
        "--ui",
        "--set",
        "http.workers=2",
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "can be mounted only in a single-worker server" in proc.stderr + proc.stdout
