#!/usr/bin/env bash
# Installs Apache Airflow 3 into its own virtual environment (default ./.venv-airflow; RECFORGE_AIRFLOW_VENV
# overrides) for the exported-DAG test (`recforge pipeline export-airflow`). Airflow pins ~130 packages that
# must not meet recforge's, so it never shares recforge's environment: the DAG's tasks call the `recforge`
# executable of the main environment instead. Idempotent: an existing venv with this Airflow version is kept.
# The official constraints file is used when it can be reached (it pins every dependency), else plain pip.
set -euo pipefail
cd "$(dirname "$0")/.."
AIRFLOW_VERSION=3.3.2
VENV=${RECFORGE_AIRFLOW_VENV:-.venv-airflow}
PYTHON=${AIRFLOW_PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ -x "$VENV/bin/airflow" ] && "$VENV/bin/python" -c "import airflow, sys; sys.exit(airflow.__version__ != '$AIRFLOW_VERSION')" 2>/dev/null; then
  echo "airflow $AIRFLOW_VERSION already in $VENV: kept" >&2
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PYV=$("$VENV/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
CONSTRAINTS="https://raw.githubusercontent.com/apache/airflow/constraints-$AIRFLOW_VERSION/constraints-$PYV.txt"
ARGS=()
if "$VENV/bin/python" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=10)" "$CONSTRAINTS" 2>/dev/null; then
  ARGS=(--constraint "$CONSTRAINTS")
else
  echo "constraints file not reachable ($CONSTRAINTS): installing with plain pip" >&2
fi
"$VENV/bin/python" -m pip install --upgrade pip
"$VENV/bin/python" -m pip install "apache-airflow==$AIRFLOW_VERSION" "${ARGS[@]}"
"$VENV/bin/airflow" version
