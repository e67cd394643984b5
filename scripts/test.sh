#!/usr/bin/env bash
# Installs everything the tests need and runs every test: unit, API, CLI, kernel parity,
# browser tests (Playwright on Debian's Chromium), the real desktop window offscreen,
# and the PyInstaller binary. Nothing is skipped. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: Chromium for the browser tests; the libraries QtWebEngine loads to run
# the pywebview window offscreen (found with ldd over PyQt6's Qt libraries); binutils,
# whose objdump PyInstaller needs to build the desktop binary.
DEB_PACKAGES=(chromium binutils libasound2 libdbus-1-3 libegl1 libfontconfig1 libgl1 libglib2.0-0
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
.venv/bin/python -m pip install -qq --upgrade pip
.venv/bin/python -m pip install -qq -e '.[test,bench,torch]'

.venv/bin/ruff check cllm_app tests bench packaging
exec .venv/bin/python -m pytest -n 2 --dist loadgroup "$@"
