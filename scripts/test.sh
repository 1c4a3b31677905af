#!/bin/bash
# The whole test suite, as CI runs it: installs what it needs, checks formatting and lints,
# starts one private containerd for the run, runs every test against it, and stops it again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=$HOME/.cargo/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin

bash scripts/install-deps.sh
bash scripts/prepare-cgroups.sh # crun needs every controller on v1 in a hybrid layout
command -v cargo >/dev/null || { echo "test: cargo is missing (install Rust with rustup)" >&2; exit 1; }

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --all-targets --locked

rt=$(mktemp -d /tmp/krt.XXXXXX)
trap 'bash scripts/containerd-down.sh "$rt"' EXIT
eval "$(bash scripts/containerd-up.sh "$rt")"
cargo test --workspace --locked
