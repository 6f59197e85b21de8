# Sourced by setup.sh and test.sh: sets PY, the Python that recforge is installed into and tested with, and
# STAMP, the file that records what setup.sh last installed. Order: $PYTHON, the active virtual environment,
# ./.venv, the system python3 -- unless that one refuses pip installs (PEP 668, e.g. Debian's): then ./.venv.
externally_managed() {
  "$1" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'
}
if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
elif [ -n "${VIRTUAL_ENV:-}" ]; then
  PY="$VIRTUAL_ENV/bin/python"
elif [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
elif externally_managed python3; then
  echo "python3 refuses pip installs outside a virtual environment: creating .venv" >&2
  python3 -m venv .venv
  PY=.venv/bin/python
else
  PY=python3
fi
PY=$(command -v "$PY")
BIN=$(dirname "$PY")
STAMP=.setup.stamp
setup_hash() {  # what an install depends on: the package metadata, the installer and the interpreter
  cat pyproject.toml scripts/setup.sh scripts/python.sh scripts/setup_torchrec.sh scripts/setup_airflow.sh | "$PY" -c "import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read() + sys.executable.encode()).hexdigest())"
}
