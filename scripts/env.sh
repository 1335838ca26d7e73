# Sourced by the scripts: one place for the build settings they share.

# Builds are slow on small machines (RocksDB alone takes minutes): keep the
# target directory outside the clone, so a fresh clone reuses earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stele-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# True when bindgen can load libclang itself. libclang-cpp (which other
# packages bring) is not it.
stele_has_libclang() {
  [ -n "${LIBCLANG_PATH:-}" ] && return 0
  local lib
  for lib in /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* \
    /usr/lib/*-linux-gnu/libclang.so* /usr/lib/*-linux-gnu/libclang-[0-9]*.so*; do
    [ -e "$lib" ] && return 0
  done
  return 1
}

# Installs the system packages the build needs, when they are missing:
# a C/C++ compiler, and libclang for RocksDB's bindings (bindgen). protoc
# comes from the protoc-bin-vendored crate, never from the system.
stele_install_build_deps() {
  local missing=()
  command -v cc >/dev/null 2>&1 || missing+=(gcc)
  command -v c++ >/dev/null 2>&1 || missing+=(g++)
  stele_has_libclang || missing+=(libclang-dev)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}"
  fi
}

# Makes sure clippy is installed (rustup's component), for the lint that
# scripts/test and scripts/sim run while they compile. Returns 1 when it
# cannot be had.
stele_ensure_clippy() {
  clippy-driver --version >/dev/null 2>&1 && return 0
  if command -v rustup >/dev/null 2>&1; then
    echo "installing: clippy (rustup component add clippy)" >&2
    rustup component add clippy >&2 || true
  fi
  clippy-driver --version >/dev/null 2>&1
}
