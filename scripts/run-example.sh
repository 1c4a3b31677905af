#!/bin/bash
# Runs the kubelet on the example pods in examples/pods, against a private containerd with locally
# built images (no registry needed). Run it as root, or as a user with sudo: it runs itself again
# through sudo. Ctrl-C stops the pods (each within its terminationGracePeriodSeconds), then the
# kubelet, then containerd, and removes what they left; a second Ctrl-C skips waiting for the pods.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/as-root.sh
source scripts/lib/as-root.sh
run_as_root run-example scripts/run-example.sh "$@"
export PATH=$HOME/.cargo/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin

log() { echo "run-example: $*" >&2; }

bash scripts/install-deps.sh
command -v cargo >/dev/null || { log "cargo is missing (install Rust with rustup)"; exit 1; }
# Outside the checkout, as scripts/test.sh: a build as root leaves no root-owned files in it.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/kubelet-rs/target}
# cri-cleanup too: containerd-down.sh then removes leftover pods without building anything.
cargo build --release --locked -p kubelet -p kubelet-testkit --bin kubelet --bin cri-cleanup
export KUBELET_RS_CRI_CLEANUP=$CARGO_TARGET_DIR/release/cri-cleanup

rt=$(mktemp -d /tmp/krx.XXXXXX)
kubelet_pid=
finish() {
  local status=$?
  if [[ -n $kubelet_pid ]] && kill -0 "$kubelet_pid" 2>/dev/null; then
    stop_kubelet
  fi
  log "stopping containerd and removing its pods, bridge, mounts and $rt"
  bash scripts/containerd-down.sh "$rt" || status=1
  log "stopped"
  exit "$status"
}
trap finish EXIT
eval "$(bash scripts/containerd-up.sh "$rt")"
sock=${KUBELET_TEST_CRI_ENDPOINT#unix://}

# A copy of the manifests: Ctrl-C removes them to have the kubelet stop the pods.
manifests=$rt/manifests
mkdir -p "$manifests" "$rt/kubelet"
cp examples/pods/* "$manifests/"
cat >"$rt/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: $manifests
podLogsDir: $rt/kubelet/pods-logs
YAML

# The longest grace period of the example pods (upstream's default 30 s where none is given).
longest_grace() {
  local file grace longest=0
  for file in "$manifests"/*; do
    grace=$(grep -o '"\?terminationGracePeriodSeconds"\?: *[0-9]*' "$file" | grep -o '[0-9]*$' || echo 30)
    if ((grace > longest)); then longest=$grace; fi
  done
  echo "$longest"
}
grace=$(longest_grace)

# Every container and sandbox of the kubelet's pods, as containerd lists them.
runtime_objects() { ctr --address "$sock" --namespace k8s.io containers list --quiet | wc -l; }

stop_kubelet() {
  log "stopping the kubelet (pid $kubelet_pid) with SIGTERM"
  kill -TERM "$kubelet_pid" 2>/dev/null || true
  wait "$kubelet_pid" 2>/dev/null || true
  kubelet_pid=
}

interrupts=0
trap 'interrupts=$((interrupts + 1))' INT TERM
# Its own session, so Ctrl-C reaches this script alone, which stops everything in order.
setsid "$CARGO_TARGET_DIR/release/kubelet" \
  --config="$rt/kubelet/config.yaml" \
  --container-runtime-endpoint="$KUBELET_TEST_CRI_ENDPOINT" \
  --root-dir="$rt/kubelet/root" \
  --container-log-symlink-dir="$rt/kubelet/containers" \
  --cgroup-root=/kubelet-rs-test \
  --hostname-override=example-node </dev/null &
kubelet_pid=$!
log "kubelet pid $kubelet_pid; pod logs under $rt/kubelet/pods-logs (try: ls -R $rt/kubelet/pods-logs)"
log "Ctrl-C stops the pods, the kubelet and containerd"
# wait returns early when a trapped signal arrives.
status=0
while ((interrupts == 0)); do
  if wait "$kubelet_pid"; then status=0; else status=$?; fi
  kill -0 "$kubelet_pid" 2>/dev/null || break
done
if ((interrupts == 0)); then
  kubelet_pid=
  log "the kubelet exited with status $status"
  exit 1
fi

log "Ctrl-C: removing the pod manifests; the kubelet stops each pod within its grace period (the longest is ${grace} s)"
rm -f "$manifests"/*
started=$SECONDS
deadline=$((SECONDS + grace + 30))
left=1
# Ctrl-C reaches ctr and sleep too: their failures only mean "look again".
while ((SECONDS < deadline && interrupts < 2)); do
  left=$(runtime_objects) || left=1
  ((left == 0)) && break
  sleep 0.5 || true
done
if ((left == 0)); then
  log "every pod stopped and removed in $((SECONDS - started)) s"
elif ((interrupts > 1)); then
  log "second Ctrl-C: not waiting for the pods: containerd-down removes them"
else
  log "pods still there after $((SECONDS - started)) s: containerd-down removes them"
fi
stop_kubelet
