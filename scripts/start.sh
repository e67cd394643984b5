#!/usr/bin/env bash
# Starts CLLM Studio from .venv: the window where there is a display, otherwise the UI served
# on a printed local URL. Extra arguments go to `cllm`. Installs into .venv (creating it, and
# rebuilding the Cython kernels) only when something the install depends on has changed since
# the last successful install: pyproject.toml, setup.py, the kernel sources or the venv's
# Python (see scripts/install_stamp.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install_stamp.sh
if [ -x .venv/bin/python ] && [ -x .venv/bin/cllm ] && [ "$(read_install_stamp)" = "$(install_inputs_hash)" ]; then
  exec .venv/bin/cllm "$@"
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
clear_install_stamp
inputs=$(install_inputs_hash)
.venv/bin/python -m pip install -qq --upgrade pip
.venv/bin/python -m pip install -qq -e .
write_install_stamp "$inputs"
exec .venv/bin/cllm "$@"
