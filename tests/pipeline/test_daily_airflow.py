"""The exported DAG, loaded and run for one date by real Apache Airflow 3 (its own venv, scripts/setup_airflow.sh).

Airflow runs each task as `recforge pipeline step` of this interpreter, so the date's outputs and history are
the ones `recforge pipeline run` would leave.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from daily_world import World, write_daily

from recforge.bundle.stream import versions
from recforge.config.daily import STEP_NAMES, load_daily
from recforge.pipeline.daily import read_history

from support import REPO, recforge

AIRFLOW_VENV = Path(os.environ.get("RECFORGE_AIRFLOW_VENV", REPO / ".venv-airflow"))
AIRFLOW = AIRFLOW_VENV / "bin" / "airflow"


def _airflow(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(AIRFLOW), *args], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"airflow {' '.join(args)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    return proc


@pytest.mark.slow
@pytest.mark.skipif(not AIRFLOW.exists(), reason=f"no Airflow venv at {AIRFLOW_VENV}: run scripts/setup_airflow.sh")
def test_airflow_runs_the_exported_dag_for_one_date(shop_world: World, tmp_path: Path) -> None:
    daily = write_daily(shop_world, tmp_path / "project", airflow={"dag_id": "shop_daily"})
    for date in ("2024-01-01", "2024-01-02"):
        shop_world.land(tmp_path / "project" / "events", date)
    dags = tmp_path / "airflow" / "dags"
    recforge("pipeline", "export-airflow", daily, "--out", dags / "shop_daily.py")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    _airflow(["db", "migrate"], env)
    run = _airflow(["dags", "test", "shop_daily", "2024-01-02"], env)
    assert "state=success" in run.stdout + run.stderr

    cfg = load_daily(daily)
    history = read_history(cfg.work)
    assert [(e.date, e.step, e.status) for e in history] == [("2024-01-02", s, "ok") for s in STEP_NAMES]
    assert len(versions(Path(cfg.work) / "models")) == 1
    window = json.loads((Path(cfg.work) / "dates/2024-01-02/window/window.json").read_text())
    assert window["dates"] == ["2024-01-01", "2024-01-02"]
    assert (Path(cfg.work) / "serving.yaml").is_file()  # the embedded store's push
    assert (Path(cfg.work) / "recall" / "recall.json").is_file()  # the live recall bundle
