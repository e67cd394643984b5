#!/usr/bin/env bash
# Installs everything the tests need and runs every test: unit, API, CLI, kernel parity,
# browser tests (Playwright on Debian's Chromium), the real desktop window offscreen,
# and the PyInstaller binary. Nothing is skipped. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: Chromium for the browser tests; the libraries QtWebEngine loads to run
# the pywebview window offscreen (found with ldd over PyQt6's Qt libraries); binutils,
# whose objdump PyInstaller needs to build the desktop binary; g++, which compiles llama.cpp.
DEB_PACKAGES=(chromium binutils g++ libasound2 libdbus-1-3 libegl1 libfontconfig1 libgl1 libglib2.0-0
  libnss3 libxcomposite1 libxdamage1 libxkbcommon0 libxkbfile1 libxrandr2 libxtst6)
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
source scripts/install_stamp.sh
clear_install_stamp
.venv/bin/python -m pip install -qq --upgrade pip
.venv/bin/python -m pip install -qq -e '.[test,bench,torch]'
write_install_stamp  # a superset of start.sh's install: start.sh need not install again

# llama.cpp for tests/test_gguf.py: llama-cpp-python (pinned in pyproject.toml's gguf-test extra)
# compiles it from source, once. Portable AVX2 code rather than this CPU's own: one build runs
# on every CPU the tests meet (AMD Zen 3, Intel AVX-512), and the native AVX-512 build crashed
# on q8_0 models. A build that has AVX-512 in it, or another version, is replaced.
LLAMA_CPP=$(grep -o 'llama-cpp-python==[0-9.]*' pyproject.toml)
if ! .venv/bin/python - "$LLAMA_CPP" 2>/dev/null <<'EOF_PY'
import sys
from importlib.metadata import version

import llama_cpp

built = llama_cpp.llama_print_system_info().decode()
sys.exit(f"llama-cpp-python=={version('llama-cpp-python')}" != sys.argv[1] or "AVX512" in built)
EOF_PY
then
  echo "building llama.cpp ($LLAMA_CPP, for tests/test_gguf.py): about 4 minutes on 2 cores, once"
  .venv/bin/python -m pip uninstall -qq -y llama-cpp-python 2>/dev/null || true
  CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON \
-DGGML_F16C=ON -DGGML_AVX512=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 \
    .venv/bin/python -m pip install -qq --no-cache-dir "$LLAMA_CPP"
fi

.venv/bin/ruff check cllm_app tests bench packaging
exec .venv/bin/python -m pytest -n 2 --dist loadgroup "$@"
