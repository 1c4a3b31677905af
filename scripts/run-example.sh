#!/bin/bash
# Runs the kubelet on the example pods in examples/pods, against a private containerd with locally
# built images (no registry needed). Ctrl-C stops the kubelet, removes the pods and the daemon.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=$HOME/.cargo/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin

bash scripts/install-deps.sh
cargo build --release --locked --bin kubelet

rt=$(mktemp -d /tmp/krx.XXXXXX)
trap 'bash scripts/containerd-down.sh "$rt"' EXIT
eval "$(bash scripts/containerd-up.sh "$rt")"
mkdir -p "$rt/kubelet"
cat >"$rt/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: $PWD/examples/pods
podLogsDir: $rt/kubelet/pods-logs
YAML
echo "run-example: pod logs under $rt/kubelet/pods-logs; try: ls -R $rt/kubelet/pods-logs" >&2
./target/release/kubelet \
  --config="$rt/kubelet/config.yaml" \
  --container-runtime-endpoint="$KUBELET_TEST_CRI_ENDPOINT" \
  --root-dir="$rt/kubelet/root" \
  --container-log-symlink-dir="$rt/kubelet/containers" \
  --cgroup-root=/kubelet-rs-test \
  --hostname-override=example-node || true
