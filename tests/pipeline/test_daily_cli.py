"""`recforge pipeline` and `recforge data partition` from the command line: errors in one line, the DAG file."""

from __future__ import annotations

import ast
from pathlib import Path

import pyarrow as pa
import pytest
from daily_world import World, write_daily

from recforge.data.partitions import write_partitions
from recforge.data.readers import read_table
from recforge.errors import DataError

from support import recforge


def test_a_bad_date_is_one_line_and_exit_2(shop_world: World, tmp_path: Path) -> None:
    proc = recforge("pipeline", "run", write_daily(shop_world, tmp_path), "--date", "2024-13-01", check=False)
    assert proc.returncode == 2
    assert "--date: '2024-13-01' is not a date" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_missing_daily_yaml_exits_2(tmp_path: Path) -> None:
    proc = recforge(
        "pipeline", "backfill", tmp_path / "nope.yaml", "--from", "2024-01-01", "--to", "2024-01-02", check=False
    )
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_export_airflow_writes_a_dag_calling_the_steps(shop_world: World, tmp_path: Path) -> None:
    daily = write_daily(shop_world, tmp_path, steps=["wait", "samples", "train"])
    out = tmp_path / "dags" / "daily_dag.py"
    proc = recforge("pipeline", "export-airflow", daily, "--out", out, "--recforge", "/opt/rf/bin/recforge")
    assert f"DAG recforge_daily (wait, samples, train) -> {out}" in proc.stdout
    text = out.read_text()
    ast.parse(text)  # a Python file Airflow can import
    assert "STEPS = ['wait', 'samples', 'train']" in text
    assert "RECFORGE = '/opt/rf/bin/recforge'" in text
    assert f"DAILY = '{daily}'" in text
    assert 'f"{RECFORGE} pipeline step {DAILY} --step {step} --date {{{{ ds }}}}"' in text  # Jinja's {{ ds }}
    assert "start_date=pendulum.datetime(2024, 1, 2" in text


def test_partitions_split_a_log_by_utc_day(tmp_path: Path) -> None:
    day = 86_400
    log = pa.table({"user_id": [1, 2, 3, 4], "timestamp": [5, day - 1, day, 3 * day + 7]})
    counts = write_partitions(log, "timestamp", str(tmp_path / "dt={date}"))
    assert counts == {"1970-01-01": 2, "1970-01-02": 1, "1970-01-04": 1}
    assert (tmp_path / "dt=1970-01-01" / "_SUCCESS").is_file()
    assert read_table(str(tmp_path / "dt=1970-01-04")).to_pylist() == [{"user_id": 4, "timestamp": 3 * day + 7}]
    with pytest.raises(DataError, match="no time column 'ts'"):
        write_partitions(log, "ts", str(tmp_path / "dt={date}"))
