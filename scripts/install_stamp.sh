# Sourced by scripts/start.sh and scripts/test.sh, from the repository root: a stamp of what
# the last successful `pip install -e .` into .venv was built from, so start.sh can skip pip
# (and the ~2 minute Cython kernel build) when nothing the install depends on has changed.

INSTALL_STAMP=.venv/.cllm-install-stamp

# Prints one sha256 over what an install depends on: pyproject.toml, setup.py and the kernel
# sources (cllm_app/kernels/*.pyx, *.pxd), by content and by name, so an edit, a new file, a
# rename or a removal all count; and the venv's Python version.
install_inputs_hash() (
  export LC_ALL=C
  shopt -s nullglob
  files=()
  for f in pyproject.toml setup.py cllm_app/kernels/*.pyx cllm_app/kernels/*.pxd; do
    [ -f "$f" ] && files+=("$f")
  done
  {
    [ ${#files[@]} -eq 0 ] || printf '%s\n' "${files[@]}" | sort | while IFS= read -r f; do sha256sum -- "$f"; done
    .venv/bin/python -c 'import sys; print(sys.version)' 2>/dev/null || echo "no python"
  } | sha256sum | cut -d' ' -f1
)

# Prints the stamp the last successful install wrote; nothing if there is none.
read_install_stamp() {
  cat "$INSTALL_STAMP" 2>/dev/null || true
}

# Records HASH (default: the inputs as they are now) as installed. Call only after the
# install succeeded; written to a temporary file and renamed, so never half written.
write_install_stamp() {
  local hash=${1:-$(install_inputs_hash)}
  printf '%s\n' "$hash" >"$INSTALL_STAMP.tmp"
  mv -f "$INSTALL_STAMP.tmp" "$INSTALL_STAMP"
}

# Forgets the stamp: call before installing, so an install that fails midway (and may leave
# the old package half removed) is never taken for a good one on the next start.
clear_install_stamp() {
  rm -f "$INSTALL_STAMP" "$INSTALL_STAMP.tmp"
}
