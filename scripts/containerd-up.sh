#!/bin/bash
# Start the private containerd (CRI plugin + CNI bridge) that one test run shares, in RT_DIR.
# Progress goes to stderr; stdout is only the environment for the tests, so a test command can do
#   eval "$(scripts/containerd-up.sh /tmp/krt)"
# Stop it with scripts/containerd-down.sh RT_DIR. See /work/shared/RUNTIME-NOTES.md.
# Environment: KUBELET_TEST_BRIDGE (default kubeletrs0) and KUBELET_TEST_SUBNET (default
# 10.88.0.0/16) give a second concurrent daemon its own CNI network; KUBELET_TEST_REGISTRY_CONFIG,
# a containerd-style certs.d dir to read instead of an empty one of its own (critest's registry);
# KUBELET_TEST_SYSTEMD_CGROUP=true makes runc use the systemd cgroup driver (a host with systemd).
set -euo pipefail

if (($# != 1)); then
  echo "usage: $0 RT_DIR" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/cni-conflist.sh
source "$here/lib/cni-conflist.sh"
bridge=${KUBELET_TEST_BRIDGE:-kubeletrs0}
registry_config=${KUBELET_TEST_REGISTRY_CONFIG:-}
subnet=${KUBELET_TEST_SUBNET:-10.88.0.0/16}
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin # runc lives in /usr/sbin

log() { echo "containerd-up: $*" >&2; }
die() { log "$*"; exit 1; }

((EUID == 0)) || die "must run as root (containerd, runc and CNI need it)"
for tool in containerd containerd-shim-runc-v2 ctr runc; do
  command -v "$tool" >/dev/null || die "$tool is missing: run scripts/install-deps.sh"
done
for plugin in bridge host-local loopback portmap; do
  [[ -x /usr/lib/cni/$plugin ]] || die "CNI plugin /usr/lib/cni/$plugin is missing: run scripts/install-deps.sh"
done

mkdir -p "$1"
rt=$(cd "$1" && pwd -P)
cd_dir=$rt/containerd
sock=$cd_dir/containerd.sock
# The ttrpc socket is the longest path, and unix socket paths stop at 108 bytes.
((${#sock} + 6 < 108)) || die "RT_DIR $rt is too long for a unix socket path: use a short one like /tmp/krt"

pid_file=$cd_dir/containerd.pid
if [[ -f $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
  die "a containerd is already running for $rt (pid $(cat "$pid_file")): run scripts/containerd-down.sh $rt first"
fi

# The marker lets containerd-down.sh delete RT_DIR knowing this script made it.
touch "$rt/.kubelet-rs-test-runtime"
printf 'bridge=%s\n' "$bridge" >"$rt/network.env"
rm -rf "$rt/cni/ipam" # fresh pod IPs on every run
mkdir -p "$cd_dir/certs.d" "$rt/images" "$rt/tests"

"$here/build-images.sh" "$rt/images" >&2

cat >"$cd_dir/config.toml" <<TOML
version = 2
root = "$cd_dir/root"
state = "$cd_dir/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$cd_dir/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "localhost/pause:3.10"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    disable_apparmor = true
    # CAP_SYS_RESOURCE is not in the bounding set here: negative oom_score_adj would fail runc.
    restrict_oom_score_adj = true
    # Pod network namespaces under RT_DIR instead of /var/run/netns.
    netns_mounts_under_state_dir = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = "$(command -v runc)"
          Root = "$cd_dir/runc-root"
          SystemdCgroup = ${KUBELET_TEST_SYSTEMD_CGROUP:-false}
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$rt/cni/net.d"
      max_conf_num = 1
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "${registry_config:-$cd_dir/certs.d}"
TOML

write_cni_conflist "$rt/cni/net.d" "$bridge" "$subnet" "$rt/cni/ipam"

containerd --config "$cd_dir/config.toml" config dump >/dev/null \
  || die "containerd rejects $cd_dir/config.toml"

log_file=$cd_dir/containerd.log
setsid containerd --config "$cd_dir/config.toml" </dev/null >"$log_file" 2>&1 &
pid=$!
echo "$pid" >"$pid_file"

fail_with_log() {
  log "$1; last lines of $log_file:"
  tail -n 30 "$log_file" >&2
  exit 1
}
deadline=$((SECONDS + 20))
until ctr --address "$sock" version >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || fail_with_log "containerd (pid $pid) exited during startup"
  ((SECONDS < deadline)) || fail_with_log "containerd (pid $pid) did not answer on $sock within 20 s"
  sleep 0.05
done
log "containerd pid $pid answers on $sock"

# CRI only sees images in the k8s.io namespace.
for archive in "$rt/images/busybox-1.35.oci.tar" "$rt/images/pause-3.10.oci.tar"; do
  ctr --address "$sock" --namespace k8s.io images import "$archive" >&2 \
    || fail_with_log "importing $archive failed"
done

echo "export KUBELET_TEST_CRI_ENDPOINT=unix://$sock"
echo "export KUBELET_TEST_RT_DIR=$rt"
