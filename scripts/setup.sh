#!/usr/bin/env bash
# Installs what a fresh machine lacks for building and testing mlt-cluster.
# apt: libclang-dev and clang (bindgen, for the LightGBM bindings); pip: cmake >= 3.28.
set -euo pipefail
need_apt=()
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || need_apt+=(libclang-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} (apt)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
cmake_ok() {
  command -v cmake >/dev/null 2>&1 || return 1
  v=$(cmake --version | head -1 | awk '{print $3}')
  [ "$(printf '%s\n3.28\n' "$v" | sort -V | head -1)" = "3.28" ]
}
if ! cmake_ok; then
  echo "setup: installing cmake>=3.28 (pip)"
  python3 -m pip install -q "cmake>=3.28,<4"
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo is required (https://rustup.rs)"; exit 1; }
if ! cargo clippy --version >/dev/null 2>&1; then rustup component add clippy rustfmt; fi
