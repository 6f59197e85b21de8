"""The Studio's session fixtures: the world (trained once), a live `recforge serve` on its stream, a live
`recforge ui` over all of it, and a headless Debian chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from world import TOKEN, World, build_world

from support import REPO, Server, free_port, start_server, stop_server


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("studio"))


@pytest.fixture(scope="session")
def service(world: World) -> Iterator[Server]:
    server = start_server(world.stream, world.serving)
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def studio(world: World, service: Server) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "recforge", "ui", "--runs", str(world.runs), "--stream", str(world.stream)]
    cmd += ["--service", service.url, "--pipeline", str(world.pipeline), "--port", str(port)]
    env = {**os.environ, "RECFORGE_ADMIN_TOKEN": TOKEN}
    process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"recforge ui exited:\n{process.stderr.read().decode() if process.stderr else ''}")
        try:
            if httpx.get(url + "/pipeline", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(30)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Screenshots land here (RECFORGE_TEST_ARTIFACTS, default test-artifacts/ in the repo, git-ignored)."""
    path = Path(os.environ.get("RECFORGE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "studio"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra has it)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()
