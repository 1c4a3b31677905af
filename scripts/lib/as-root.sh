# shellcheck shell=bash
# Sourced by the README's commands (scripts/run-example.sh, scripts/test.sh), which need root:
# `run_as_root NAME SCRIPT ARGS...` returns at once for root, and otherwise runs SCRIPT again as
# root through sudo, with the invoking user's Rust toolchain on PATH (sudo's secure_path has no
# ~/.cargo/bin); sudo sets HOME to root's, so cargo's home is root's (/root/.cargo), as for a run
# as root, and nothing root-owned lands in the user's home.

run_as_root() {
  local name=$1 script=$2
  shift 2
  ((EUID == 0)) && return 0
  if ! command -v sudo >/dev/null; then
    echo "$name: needs root: run it as root, or install sudo" >&2
    exit 1
  fi
  # rustup's proxies resolve the toolchain from the user's settings; root gets the real binaries.
  local cargo
  cargo=$(rustup which cargo 2>/dev/null || command -v cargo || true)
  if [[ -z $cargo ]]; then
    echo "$name: cargo is missing (install Rust with rustup)" >&2
    exit 1
  fi
  local toolchain
  toolchain=$(dirname "$(readlink -f "$cargo")")
  echo "$name: not root: running it again as root with sudo (Rust from $toolchain)" >&2
  # sudo drops the environment; a CARGO_TARGET_DIR the user chose is kept.
  exec sudo env PATH="$toolchain:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    ${CARGO_TARGET_DIR:+"CARGO_TARGET_DIR=$CARGO_TARGET_DIR"} bash "$script" "$@"
}
