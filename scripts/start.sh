#!/usr/bin/env bash
# Installs CLLM Studio into .venv and starts it: the window where there is a display,
# otherwise the UI served on a printed local URL. Extra arguments go to `cllm`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -qq --upgrade pip
.venv/bin/python -m pip install -qq -e .
exec .venv/bin/cllm "$@"
