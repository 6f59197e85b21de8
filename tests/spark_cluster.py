"""A real Spark standalone cluster on 127.0.0.1: one master and one worker, for the tests and bench/.

Both are started from pyspark's own launch classes (`bin/spark-class ...deploy.master.Master` / `Worker`),
so jobs run in a separate executor JVM as on any cluster, not in `local[*]`. The session fixture
`spark_standalone_master` returns the master URL (`spark://127.0.0.1:PORT`) and stops both at the end.
One Spark context lives in a process: run cluster jobs in a subprocess when this process already holds
a local session.
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


class LocalSparkCluster:
    """Master + one worker (`cores`, `memory`) from pyspark's package; `start()` returns the master URL."""

    def __init__(self, spark_home: Path, logs: Path, cores: int = 1, memory: str = "1g") -> None:
        self.home, self.logs, self.cores, self.memory = spark_home, logs, cores, memory
        self.processes: list[subprocess.Popen[bytes]] = []

    def _launch(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "SPARK_HOME": str(self.home), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1"}
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [str(self.home / "bin" / "spark-class"), *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopping it stops the JVM it execs
            )
        self.processes.append(process)
        deadline = time.monotonic() + START_TIMEOUT_S
        ready = "I have been elected leader" if name == "master" else "Successfully registered with master"
        while ready not in (self.logs / f"{name}.log").read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"Spark {name} did not start:\n{tail}")
            time.sleep(0.5)
        return process

    def start(self) -> str:
        self.logs.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        url = f"spark://127.0.0.1:{port}"
        master = ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port)]
        self._launch([*master, "--webui-port", "0"], "master")
        worker = ["org.apache.spark.deploy.worker.Worker", url, "--cores", str(self.cores), "--memory", self.memory]
        self._launch([*worker, "--webui-port", "0", "--work-dir", str(self.logs / "work")], "worker")
        return url

    @property
    def worker_pid(self) -> int | None:
        return self.processes[1].pid if len(self.processes) > 1 else None

    def stop(self) -> None:
        """Stop the worker (and with it its executors), then the master."""
        while self.processes:
            process = self.processes.pop()
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def spark_home() -> Path | None:
    """pyspark's package directory (it holds bin/spark-class and the jars); None without pyspark or Java."""
    try:
        import pyspark
    except ImportError:
        return None
    return Path(pyspark.__file__).parent if shutil.which("java") else None


@pytest.fixture(scope="session")
def spark_standalone_master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`spark://127.0.0.1:PORT` of a running master with one worker (1 core, 1 GiB) registered."""
    home = spark_home()
    if home is None:
        pytest.skip("the Spark cluster needs pyspark (pip install 'recforge[spark]') and a Java runtime")
    cluster = LocalSparkCluster(home, tmp_path_factory.mktemp("spark_cluster"))
    try:
        url = cluster.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield url
    finally:
        cluster.stop()
