"""The one Spark session recforge's engines share: local mode by default, any cluster by its master URL.

pyspark is imported only when a Spark engine runs (samples, features, i2i recall); a process holds one
Spark context, so every engine goes through `spark_session` here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from recforge.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

LOCAL_SHUFFLE_PARTITIONS = 2  # the default 200 makes small local jobs spend their time scheduling

EXECUTOR_PYTHONPATH = "spark.executorEnv.PYTHONPATH"

_started: list[SparkSession] = []  # sessions this module started, so only those are stopped here


def spark_session(master: str, conf: dict[str, str] | None = None) -> SparkSession:
    """The running Spark session, else a new one on `master` with quiet logs, no UI and `conf`.

    A process holds one Spark context, so a running session (this module's or the caller's) is reused;
    a different master is then logged and `conf` is not applied.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "engine", "engine 'spark' needs pyspark, which is not installed", fix="pip install 'recforge[spark]'"
        ) from None
    running = SparkSession.getActiveSession()
    if running is not None:
        if running.sparkContext.master != master:
            log.warning("Spark is already running on %s; using it instead of %s", running.sparkContext.master, master)
        return running
    builder = SparkSession.builder.master(master).appName("recforge")
    settings = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"}
    if master.startswith("local"):
        settings["spark.sql.shuffle.partitions"] = str(LOCAL_SHUFFLE_PARTITIONS)
    settings[EXECUTOR_PYTHONPATH] = recforge_root()  # executors' Python workers import recforge (features, splits)
    for name, value in {**settings, **(conf or {})}.items():
        builder = builder.config(name, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    _started.append(session)
    return session


def recforge_root() -> str:
    """The folder the driver imports recforge from; `spark.conf` overrides it where executors see another path."""
    import recforge

    return str(Path(recforge.__file__).resolve().parents[1])


def stop_sessions() -> None:
    """Stop the sessions this module started (tests and long-lived services call this at exit)."""
    while _started:
        _started.pop().stop()
