#!/bin/bash
# Start kubelet-rs's built-in runtime (`kubelet runtime`) privately in RT_DIR, as
# scripts/containerd-up.sh starts containerd: its own socket, root and state dirs, CNI bridge and
# the offline test images. Progress goes to stderr; stdout is only the environment for the tests:
#   eval "$(scripts/runtime-up.sh /tmp/kbr target/debug/kubelet)"
# Stop it with scripts/runtime-down.sh RT_DIR. Containers' monitors outlive the daemon by design,
# so runtime-down.sh removes the pods through CRI first.
# Environment: KUBELET_TEST_BRIDGE (default kubeletrs2), KUBELET_TEST_SUBNET (default
# 10.90.0.0/16), so it can run beside the private containerd; KUBELET_TEST_REGISTRY_CONFIG, a
# containerd-style certs.d dir for the runtime's registry hosts (default RT_DIR/runtime/certs.d).
set -euo pipefail

if (($# != 2)); then
  echo "usage: $0 RT_DIR KUBELET_BINARY" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/cni-conflist.sh
source "$here/lib/cni-conflist.sh"
bridge=${KUBELET_TEST_BRIDGE:-kubeletrs2}
subnet=${KUBELET_TEST_SUBNET:-10.90.0.0/16}
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin # runc lives in /usr/sbin

log() { echo "runtime-up: $*" >&2; }
die() { log "$*"; exit 1; }

((EUID == 0)) || die "must run as root (namespaces, mounts, runc and CNI need it)"
kubelet=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
[[ -x $kubelet ]] || die "$2 is not an executable kubelet binary: build it with cargo build -p kubelet"
command -v runc >/dev/null || die "runc is missing: run scripts/install-deps.sh"
for plugin in bridge host-local loopback portmap; do
  [[ -x /usr/lib/cni/$plugin ]] || die "CNI plugin /usr/lib/cni/$plugin is missing: run scripts/install-deps.sh"
done

mkdir -p "$1"
rt=$(cd "$1" && pwd -P)
dir=$rt/runtime
sock=$dir/cri.sock
((${#sock} < 108)) || die "RT_DIR $rt is too long for a unix socket path: use a short one like /tmp/kbr"
pid_file=$dir/runtime.pid
if [[ -f $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
  die "a runtime is already running for $rt (pid $(cat "$pid_file")): run scripts/runtime-down.sh $rt first"
fi

# The marker lets runtime-down.sh delete RT_DIR knowing this script made it.
touch "$rt/.kubelet-rs-test-runtime"
printf 'bridge=%s\n' "$bridge" >"$rt/network.env"
printf 'kubelet=%s\n' "$kubelet" >"$rt/runtime.env"
rm -rf "$rt/cni/ipam" # fresh pod IPs on every run
registry_config=${KUBELET_TEST_REGISTRY_CONFIG:-$dir/certs.d}
mkdir -p "$dir" "$registry_config" "$rt/images" "$rt/tests"
write_cni_conflist "$rt/cni/net.d" "$bridge" "$subnet" "$rt/cni/ipam"

"$here/build-images.sh" "$rt/images" >&2
dirs=(--root "$dir/root" --state "$dir/state")
# Before the daemon starts: the image store belongs to one process at a time.
"$kubelet" runtime import "${dirs[@]}" "$rt/images/busybox-1.35.oci.tar" "$rt/images/pause-3.10.oci.tar" >&2 \
  || die "importing the test images failed"

log_file=$dir/runtime.log
setsid "$kubelet" runtime --listen "unix://$sock" "${dirs[@]}" \
  --cni-conf-dir "$rt/cni/net.d" --cni-bin-dir /usr/lib/cni --registry-config "$registry_config" \
  </dev/null >"$log_file" 2>&1 &
pid=$!
echo "$pid" >"$pid_file"

deadline=$((SECONDS + 20))
until [[ -S $sock ]]; do
  if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
    log "the runtime (pid $pid) did not serve $sock; last lines of $log_file:"
    tail -n 30 "$log_file" >&2
    exit 1
  fi
  sleep 0.05
done
log "the built-in runtime, pid $pid, serves $sock"

echo "export KUBELET_TEST_CRI_ENDPOINT=unix://$sock"
echo "export KUBELET_TEST_RT_DIR=$rt"
