"""A real redis-server for the tests (feature store, event streams): one per session on a free port, no persistence.

`redis_server.stop()` / `.start()` take the same server down and up again on the same port (its data is
lost, as with a real restart of a cache); `.pause()` / `.resume()` freeze it (SIGSTOP), so reads time out.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

START_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process that tests can stop, restart, pause and resume on its port."""

    def __init__(self, binary: str, port: int, log_file: Path) -> None:
        self.binary, self.port, self.log_file = binary, port, log_file
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.process is not None:
            return
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen([*args, "--daemonize", "no"], stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        tail = self.log_file.read_text(errors="replace")[-2000:]
                        pytest.fail(f"redis-server on port {self.port} did not answer PING:\n{tail}")
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is None:
            return
        self.resume()
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def pause(self) -> None:
        assert self.process is not None, "start the server first"
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A running redis-server for the whole session, killed at the end."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run scripts/setup.sh (it installs Debian's redis-server)")
    server = RedisServer(binary, _free_port(), tmp_path_factory.mktemp("redis") / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The server's URL with an empty database; after the test it is running and unpaused again."""
    redis_server.start()
    with redis_server.client() as client:
        client.flushall()
    yield redis_server.url
    redis_server.resume()
    redis_server.start()
