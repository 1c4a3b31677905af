#!/bin/bash
# The whole test suite, as CI runs it: installs what it needs, checks formatting and lints, runs
# every test and critest against one private containerd, then runs the kubelet's end-to-end suites
# and critest again against the built-in runtime alone (no containerd), runs the systemd-driver
# test in a Debian guest, and stops what it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# As root, or as a user with sudo: it runs itself again through sudo.
# shellcheck source=scripts/lib/as-root.sh
source scripts/lib/as-root.sh
run_as_root test scripts/test.sh "$@"
export PATH=$HOME/.cargo/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin

bash scripts/install-deps.sh
bash scripts/prepare-cgroups.sh # crun needs every controller on v1 in a hybrid layout
command -v cargo >/dev/null || { echo "test: cargo is missing (install Rust with rustup)" >&2; exit 1; }
# Build outputs outlive the clone, so the next run on this machine rebuilds only what changed.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/kubelet-rs/target}
# Incremental caches would double that dir's size for little gain on a whole-workspace build.
export CARGO_INCREMENTAL=0

# critest on the built-in runtime must pass every spec that containerd passes in the same run,
# and at least max(this floor, containerd's count + this margin) (see the README).
critest_floor=65
critest_margin=3

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --all-targets --locked
# The .deb: control fields, contents, and kubelet.service as systemd reads it.
bash scripts/check-deb.sh "$CARGO_TARGET_DIR/debug/kubelet"

rt=$(mktemp -d /tmp/krt.XXXXXX)
brt=
registry=
cleanup() {
  local status=0
  [[ -z $registry ]] || bash scripts/critest.sh registry-down "$registry" || status=1
  [[ -z $brt ]] || bash scripts/runtime-down.sh "$brt" || status=1
  [[ -z $rt ]] || bash scripts/containerd-down.sh "$rt" || status=1
  return "$status"
}
# A leftover (a pod, a mount, a bridge) fails the run too.
trap 'status=$?; cleanup || status=1; exit "$status"' EXIT

# critest's stand-in images, served by a private docker-registry that both runtimes read through
# their certs.d dir; its reports land beside it.
registry=$(mktemp -d /tmp/kcr.XXXXXX)
eval "$(bash scripts/critest.sh registry-up "$registry")"

# 1. Every test, then critest, against a private containerd.
eval "$(KUBELET_TEST_REGISTRY_CONFIG=$CRITEST_REGISTRY_CONFIG bash scripts/containerd-up.sh "$rt")"
cargo test --workspace --locked
bash scripts/critest.sh run "$registry" "$KUBELET_TEST_CRI_ENDPOINT" --out "$registry/containerd"
bash scripts/containerd-down.sh "$rt"
rt=

# 2. The built-in runtime alone, served by the kubelet binary (`kubelet runtime`): the kubelet's
#    end-to-end suites again, and critest, held to containerd's result.
brt=$(mktemp -d /tmp/kbr.XXXXXX)
eval "$(KUBELET_TEST_REGISTRY_CONFIG=$CRITEST_REGISTRY_CONFIG \
  bash scripts/runtime-up.sh "$brt" "$CARGO_TARGET_DIR/debug/kubelet")"
# The cluster suites met the real kube-apiserver in step 1 already; here the runtime is the subject.
cargo test --locked -p kubelet --test static_pods --test lifecycle --test cluster --test api_pods \
  --test api_sync --test kubectl_proxy --test summary_figures --test conformance -- --skip kube_apiserver
cargo test --locked -p kubelet-server --test streaming
bash scripts/critest.sh run "$registry" "$KUBELET_TEST_CRI_ENDPOINT" --out "$registry/builtin"
bash scripts/critest.sh compare "$registry/containerd" "$registry/builtin" \
  --margin "$critest_margin" --floor "$critest_floor"

# 3. Where these hosts cannot look (cgroup v2, systemd as PID 1): a Debian guest, whose image is
#    cached between runs; its console goes to this log.
bash scripts/vm/monitor-scope-test.sh "$CARGO_TARGET_DIR/debug/kubelet"
bash scripts/vm/node-resources-test.sh "$CARGO_TARGET_DIR/debug/kubelet"
