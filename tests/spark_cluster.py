"""A real Spark standalone cluster for the tests: one master and one worker on 127.0.0.1, per session.

Both are started from pyspark's own launch classes (`bin/spark-class ...deploy.master.Master` / `Worker`),
so jobs run in a separate executor JVM as on any cluster, not in `local[*]`. The fixture returns the master
URL (`spark://127.0.0.1:PORT`) and stops both processes at the end. One Spark context lives in a process:
run cluster jobs in a subprocess when this process already holds a local session.
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

START_TIMEOUT_S = 120.0  # two JVMs on a busy 2-core box


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spark_home() -> Path:
    """pyspark's package directory, which holds bin/spark-class and the jars."""
    pyspark = pytest.importorskip("pyspark", reason="the Spark cluster needs pyspark (pip install 'recforge[spark]')")
    if shutil.which("java") is None:
        pytest.skip("the Spark cluster needs a Java runtime")
    return Path(pyspark.__file__).parent


def _launch(home: Path, args: list[str], log_file: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1"}
    with log_file.open("ab") as log:
        return subprocess.Popen(
            [str(home / "bin" / "spark-class"), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops the JVM it execs
        )


def _wait_for(log_file: Path, text: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while text not in log_file.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"Spark {what} did not start:\n{log_file.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def spark_standalone_master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`spark://127.0.0.1:PORT` of a running master with one worker (1 core, 1 GiB) registered."""
    home = spark_home()
    logs = tmp_path_factory.mktemp("spark_cluster")
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    master = _launch(
        home,
        ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port), "--webui-port", "0"],
        logs / "master.log",
    )
    worker = None
    try:
        _wait_for(logs / "master.log", "I have been elected leader", master, "master")
        worker = _launch(
            home,
            [
                "org.apache.spark.deploy.worker.Worker",
                url,
                "--cores",
                "1",
                "--memory",
                "1g",
                "--webui-port",
                "0",
                "--work-dir",
                str(logs / "work"),
            ],
            logs / "worker.log",
        )
        _wait_for(logs / "worker.log", "Successfully registered with master", worker, "worker")
        yield url
    finally:
        if worker is not None:
            _stop(worker)
        _stop(master)
