#!/bin/bash
# The built-in runtime's container monitors under the systemd cgroup driver, in the KVM guest
# (systemd as PID 1, cgroup v2): each monitor must sit in its own transient scope
# (kubelet-rs-monitor-<id>.scope in the pod's slice), so that stopping the service running the
# runtime (KillMode=control-group) leaves the container and its monitor running, and the next
# start of the runtime finds the container again (same id, same pid, still running).
#
#   sudo bash scripts/vm/monitor-scope-test.sh [KUBELET_BINARY]
#
# On the host it boots the guest through scripts/vm/run.sh and runs itself there (--in-guest).
# KUBELET_BINARY defaults to $CARGO_TARGET_DIR/debug/kubelet (build it with
# `cargo build -p kubelet`; CARGO_TARGET_DIR defaults as in scripts/test.sh); crictl comes from
# ../shared/tools/get crictl or $CRICTL. Exit status 0 when every check passed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
log() { echo "monitor-scope-test: $*"; }
die() {
  log "FAIL: $*"
  exit 1
}

if [[ ${1:-} != --in-guest ]]; then
  target=${CARGO_TARGET_DIR:-/var/cache/kubelet-rs/target}
  kubelet=${1:-$target/debug/kubelet}
  [[ -x $kubelet ]] || die "$kubelet is missing: build it with cargo build -p kubelet (CARGO_TARGET_DIR=$target)"
  kubelet=$(cd "$(dirname "$kubelet")" && pwd -P)/$(basename "$kubelet")
  crictl=${CRICTL:-$("$repo/../shared/tools/get" crictl 2>/dev/null || true)}
  [[ -x $crictl ]] || die "crictl is missing: set CRICTL or provide ../shared/tools/get crictl"
  exec bash "$here/run.sh" --timeout "${KRT_VM_TIMEOUT:-600}" \
    --share "$(dirname "$kubelet")" --share "$(dirname "$crictl")" \
    -- bash "$here/monitor-scope-test.sh" --in-guest "$kubelet" "$crictl"
fi

# --- in the guest ------------------------------------------------------------------------------
kubelet=$2
crictl=$3
[[ $(cat /proc/1/comm) == systemd ]] || die "PID 1 is $(cat /proc/1/comm), not systemd"
[[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]] || die "/sys/fs/cgroup is not the unified hierarchy"

rt=/var/tmp/krt
sock=/run/krt/cri.sock
unit=krt-test
pod_uid=0b1d5c0e-5c09-4e1a-9a5e-7f1e2d3c4b5a
slice=kubepods-besteffort-pod${pod_uid//-/_}.slice
cri=("$crictl" --config "$rt/crictl.yaml")
mkdir -p "$rt/images" "$rt/logs" /run/krt
# A config file of its own, or crictl warns about /etc/crictl.yaml at every call.
printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 60\n' "$sock" "$sock" >"$rt/crictl.yaml"

# shellcheck source=scripts/lib/cni-conflist.sh
source "$repo/scripts/lib/cni-conflist.sh"
write_cni_conflist "$rt/cni/net.d" krtvm0 10.77.0.0/16 "$rt/cni/ipam"
bash "$repo/scripts/build-images.sh" "$rt/images" >/dev/null
dirs=(--root "$rt/root" --state "$rt/state")
if ! "$kubelet" runtime import "${dirs[@]}" "$rt/images/busybox-1.35.oci.tar" \
  "$rt/images/pause-3.10.oci.tar" >"$rt/import.log" 2>&1; then
  cat "$rt/import.log"
  die "kubelet runtime import failed"
fi

start_runtime() {
  systemd-run --quiet --unit="$unit" -p KillMode=control-group -p TimeoutStopSec=20 \
    "$kubelet" runtime --listen "unix://$sock" "${dirs[@]}" --cni-conf-dir "$rt/cni/net.d" \
    --cni-bin-dir /usr/lib/cni --cgroup-driver systemd || die "systemd-run $unit failed"
  local deadline=$((SECONDS + 60))
  until "${cri[@]}" version >/dev/null 2>&1; do
    if ! systemctl is-active --quiet "$unit" || ((SECONDS >= deadline)); then
      journalctl -u "$unit" --no-pager | tail -n 30
      die "the runtime ($unit) did not serve $sock"
    fi
    sleep 0.5
  done
  log "runtime up as $unit (pid $(systemctl show -P MainPID "$unit"))"
}

# The pid in the file the monitor writes first thing (`PID START_TIME`).
monitor_pid() {
  local file
  file=$(find "$rt/state" -path "*/$1/monitor.pid" | head -n 1)
  [[ -n $file ]] || die "no monitor.pid for $1 under $rt/state"
  cut -d' ' -f1 "$file"
}
cgroup_of() { sed -n 's/^0:://p' "/proc/$1/cgroup"; }
container_state() { "${cri[@]}" inspect -o go-template --template '{{.status.state}}' "$1"; }
container_pid() { "${cri[@]}" inspect -o go-template --template '{{.info.pid}}' "$1"; }

start_runtime
cat >"$rt/pod.json" <<EOF
{"metadata": {"name": "scope-test", "namespace": "default", "uid": "$pod_uid", "attempt": 0},
 "log_directory": "$rt/logs/default_scope-test_$pod_uid",
 "linux": {"cgroup_parent": "$slice",
           "security_context": {"namespace_options": {"pid": 1}}}}
EOF
cat >"$rt/ctr.json" <<EOF
{"metadata": {"name": "sleeper", "attempt": 0}, "image": {"image": "localhost/busybox:1.35"},
 "command": ["/bin/sh", "-c", "trap 'exit 0' TERM; echo started; while :; do sleep 1; done"],
 "log_path": "sleeper/0.log", "linux": {}}
EOF
pod=$("${cri[@]}" runp "$rt/pod.json") || die "RunPodSandbox failed"
cid=$("${cri[@]}" create "$pod" "$rt/ctr.json" "$rt/pod.json") || die "CreateContainer failed"
"${cri[@]}" start "$cid" >/dev/null || die "StartContainer $cid failed"
log "pod $pod, container $cid running"

scope=kubelet-rs-monitor-$cid.scope
mpid=$(monitor_pid "$cid")
cpid=$(container_pid "$cid")
log "monitor pid $mpid in $(cgroup_of "$mpid")"
log "container pid $cpid in $(cgroup_of "$cpid")"
systemctl is-active --quiet "$scope" || die "$scope is not active: $(systemctl status "$scope" 2>&1 | head -n 5)"
[[ $(systemctl show -P Slice "$scope") == "$slice" ]] || die "$scope is in $(systemctl show -P Slice "$scope"), not $slice"
[[ $(cgroup_of "$mpid") == */$slice/$scope ]] || die "the monitor is not in $scope: $(cgroup_of "$mpid")"
systemctl show -P ControlGroup "$unit" | grep -q . || die "$unit has no cgroup"
[[ $(cgroup_of "$mpid") != "$(systemctl show -P ControlGroup "$unit")"* ]] || die "the monitor is in $unit's cgroup"

log "systemctl stop $unit (KillMode=control-group)"
systemctl stop "$unit"
systemctl is-active --quiet "$unit" && die "$unit is still active after stop"
kill -0 "$mpid" 2>/dev/null || die "the monitor (pid $mpid) died with $unit"
kill -0 "$cpid" 2>/dev/null || die "the container (pid $cpid) died with $unit"
systemctl is-active --quiet "$scope" || die "$scope is gone after stopping $unit"
log "after the stop: monitor $mpid and container $cpid alive, $scope active"

start_runtime
[[ $("${cri[@]}" ps -q --id "$cid") == "$cid" ]] || die "crictl ps does not list $cid after the restart"
[[ $(container_state "$cid") == CONTAINER_RUNNING ]] || die "$cid is $(container_state "$cid") after the restart"
[[ $(container_pid "$cid") == "$cpid" ]] || die "$cid has pid $(container_pid "$cid"), not $cpid: it was restarted"
log "after the restart: $cid running, same pid $cpid"
"${cri[@]}" ps

# A slice systemd refuses: CreateContainer fails, and says which scope and why.
sed -e "s/$slice/not-a-slice/" -e 's/"scope-test"/"bad-slice"/' -e "s/$pod_uid/$pod_uid-2/" "$rt/pod.json" >"$rt/bad-pod.json"
bad_pod=$("${cri[@]}" runp "$rt/bad-pod.json") || die "RunPodSandbox (bad slice) failed"
if error=$("${cri[@]}" create "$bad_pod" "$rt/ctr.json" "$rt/bad-pod.json" 2>&1); then
  die "a container was created in the invalid slice not-a-slice"
fi
[[ $error == *kubelet-rs-monitor-*.scope*not-a-slice* ]] || die "the error names no scope and slice: $error"
log "an invalid slice fails clearly: ${error##*desc = }"
"${cri[@]}" stopp "$bad_pod" >/dev/null || die "StopPodSandbox $bad_pod failed"
"${cri[@]}" rmp "$bad_pod" >/dev/null || die "RemovePodSandbox $bad_pod failed"

# Teardown: the scope goes with its monitor.
"${cri[@]}" stopp "$pod" >/dev/null || die "StopPodSandbox $pod failed"
"${cri[@]}" rmp "$pod" >/dev/null || die "RemovePodSandbox $pod failed"
for _ in $(seq 50); do
  systemctl is-active --quiet "$scope" || break
  sleep 0.2
done
systemctl is-active --quiet "$scope" && die "$scope is still active after the pod was removed"
systemctl stop "$unit"
log "PASS"
