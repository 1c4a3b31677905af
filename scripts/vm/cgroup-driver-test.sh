#!/bin/bash
# The kubelet's cgroups on cgroup v2, under both cgroup drivers, in the KVM guest (systemd as
# PID 1, the unified hierarchy): the kubelet binary runs against containerd in the guest
# (SystemdCgroup = true for the systemd driver) with two static pods, and the v2 files are read
# back: the QoS cgroups (kubepods limited to allocatable, burstable and besteffort) with
# upstream's values, a Burstable and a Guaranteed pod's cpu.weight, cpu.max, memory.max and
# pids.max, their containers inside the pod's cgroup, and a removed pod's cgroup gone (with
# systemd: kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice, and its
# unit stopped); the node's CPU and memory in /stats/summary, and a PSI memory trigger.
#
#   sudo bash scripts/vm/cgroup-driver-test.sh [KUBELET_BINARY]
#
# On the host it boots the guest through scripts/vm/run.sh and runs itself there (--in-guest).
# KUBELET_BINARY defaults to $CARGO_TARGET_DIR/debug/kubelet (build it with
# `cargo build -p kubelet`); crictl comes from ../shared/tools/get crictl or $CRICTL.
# KRT_CGROUP_DRIVERS (default "systemd cgroupfs") picks the drivers. Exit status 0 when every
# check passed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
log() { echo "cgroup-driver-test: $*"; }
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
  exec bash "$here/run.sh" --timeout "${KRT_VM_TIMEOUT:-900}" \
    --share "$(dirname "$kubelet")" --share "$(dirname "$crictl")" \
    --env "KRT_CGROUP_DRIVERS=${KRT_CGROUP_DRIVERS:-systemd cgroupfs}" \
    -- bash "$here/cgroup-driver-test.sh" --in-guest "$kubelet" "$crictl"
fi

# --- in the guest ------------------------------------------------------------------------------
kubelet=$2
crictl=$3
[[ $(cat /proc/1/comm) == systemd ]] || die "PID 1 is $(cat /proc/1/comm), not systemd"
[[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]] || die "/sys/fs/cgroup is not the unified hierarchy"
cg=/sys/fs/cgroup
busybox=localhost/busybox:1.35
kube_reserved_cpu_milli=100
kube_reserved_memory=$((256 << 20))
pod_pids_limit=512
cri=()
kpid=
wait_for() { # SECONDS COMMAND...
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# Upstream's values: shares from millicores (MilliCPUToShares), then v2's weight
# (CpuSharesToCpuWeight).
shares() { local s=$(($1 * 1024 / 1000)); echo $((s < 2 ? 2 : s > 262144 ? 262144 : s)); }
weight() { echo $((1 + (($1 - 2) * 9999) / 262142)); }
pages() { echo $(($1 / 4096 * 4096)); } # the kernel keeps memory.max in whole pages

# The cgroup path of a cgroup name ("/kubepods/burstable") under the driver.
path_of() {
  local name=${1#/} driver=$2
  if [[ $driver == cgroupfs ]]; then
    echo "/$name"
    return
  fi
  local out="" prefix="" part
  IFS=/ read -ra parts <<<"$name"
  for part in "${parts[@]}"; do
    part=${part//-/_}
    prefix=${prefix:+$prefix-}$part
    out+="/$prefix.slice"
  done
  echo "$out"
}

expect() { # FILE VALUE
  local got
  got=$(cat "$cg$1" 2>/dev/null) || die "$cg$1 is missing"
  [[ $got == "$2" ]] || die "$cg$1 is '$got', expected '$2'"
  log "  $1 = $got"
}

static_pod() { # NAME UID RESOURCES_YAML
  cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $1
  namespace: default
${2:+  uid: $2}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: $busybox
    imagePullPolicy: IfNotPresent
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    resources:
$3
EOF
}

run_driver() {
  local driver=$1 rt=/tmp/kd-$1 systemd=false
  [[ $driver == systemd ]] && systemd=true
  log "=== driver $driver ==="
  local env
  env=$(KUBELET_TEST_SYSTEMD_CGROUP=$systemd KUBELET_TEST_BRIDGE=kbrvm0 KUBELET_TEST_SUBNET=10.79.0.0/16 \
    bash "$repo/scripts/containerd-up.sh" "$rt" 2>"$rt.containerd-up.log") || {
    cat "$rt.containerd-up.log"
    die "containerd-up.sh failed"
  }
  eval "$env"
  # A config file of its own, or crictl warns about /etc/crictl.yaml at every call.
  printf 'runtime-endpoint: %s\nimage-endpoint: %s\ntimeout: 60\n' "$KUBELET_TEST_CRI_ENDPOINT" \
    "$KUBELET_TEST_CRI_ENDPOINT" >"$rt.crictl.yaml"
  cri=("$crictl" --config "$rt.crictl.yaml")
  mkdir -p "$rt/kubelet/manifests"
  cat >"$rt/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: $driver
cgroupRoot: /
cgroupsPerQOS: true
podPidsLimit: $pod_pids_limit
enforceNodeAllocatable: [pods]
kubeReserved:
  cpu: ${kube_reserved_cpu_milli}m
  memory: $((kube_reserved_memory >> 20))Mi
podLogsDir: $rt/kubelet/pod-logs
imageGCHighThresholdPercent: 100
readOnlyPort: 10255
kernelMemcgNotification: true
evictionHard:
  memory.available: 1Mi
  nodefs.available: 1%
  imagefs.available: 1%
EOF
  # A UID with dashes, which the systemd driver's slice names turn into underscores.
  static_pod burstable 0b1d5c0e-5c09-4e1a-9a5e-7f1e2d3c4b5a "      requests:
        cpu: 250m" >"$rt/kubelet/manifests/burstable.yaml"
  static_pod guaranteed "" "      requests: {cpu: 500m, memory: 64Mi}
      limits: {cpu: 500m, memory: 64Mi}" >"$rt/kubelet/manifests/guaranteed.yaml"
  local started=$SECONDS
  start_kubelet() {
    "$kubelet" --config="$rt/kubelet/config.yaml" \
      --container-runtime-endpoint="$KUBELET_TEST_CRI_ENDPOINT" \
      --pod-manifest-path="$rt/kubelet/manifests" --root-dir="$rt/kubelet/root" \
      --cert-dir="$rt/kubelet/pki" --container-log-symlink-dir="$rt/kubelet/containers" \
      --hostname-override=vm-node --healthz-port=0 -v=2 >>"$rt/kubelet.log" 2>&1 &
    kpid=$!
  }
  start_kubelet
  fail() {
    log "last lines of the kubelet's log:"
    tail -n 40 "$rt/kubelet.log"
    kill "$kpid" 2>/dev/null || true
    die "$*"
  }
  both_running() {
    local pod
    for pod in burstable-vm-node guaranteed-vm-node; do
      [[ $("${cri[@]}" ps -q --state running --label "io.kubernetes.pod.name=$pod" 2>/dev/null) ]] || return 1
    done
  }
  wait_for 300 both_running || fail "the static pods did not run within 300 s"
  log "both pods running $((SECONDS - started)) s after the kubelet's start"

  # The node's figures on v2 (the eviction manager's input): its CPU and working set in
  # /stats/summary; and memory pressure watched through PSI.
  node_stats() {
    busybox wget -qO- http://127.0.0.1:10255/stats/summary 2>/dev/null \
      | jq -e '.node.cpu.usageCoreNanoSeconds > 0 and .node.memory.workingSetBytes > 0' >/dev/null
  }
  wait_for 60 node_stats || fail "/stats/summary has no node CPU and memory"
  log "/stats/summary has the node's CPU and memory"
  ! grep -q "summary without the node" "$rt/kubelet.log" || fail "a summary lacked the node's figures"
  ! grep -q "no memory pressure notifications" "$rt/kubelet.log" || fail "no PSI trigger"

  # The QoS hierarchy and node allocatable on kubepods.
  local kubepods burstable besteffort
  kubepods=$(path_of /kubepods "$driver")
  burstable=$(path_of /kubepods/burstable "$driver")
  besteffort=$(path_of /kubepods/besteffort "$driver")
  local cpus memory pid_max threads
  cpus=$(nproc)
  memory=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) * 1024))
  pid_max=$(cat /proc/sys/kernel/pid_max)
  threads=$(cat /proc/sys/kernel/threads-max)
  log "QoS cgroups ($cpus CPUs, $memory bytes):"
  expect "$kubepods/cpu.weight" "$(weight "$(shares $((cpus * 1000 - kube_reserved_cpu_milli)))")"
  expect "$kubepods/memory.max" "$(pages $((memory - kube_reserved_memory)))"
  expect "$kubepods/pids.max" "$((pid_max < threads ? pid_max : threads))"
  expect "$burstable/cpu.weight" "$(weight "$(shares 250)")"
  expect "$burstable/memory.max" max
  expect "$besteffort/cpu.weight" 1
  expect "$besteffort/memory.max" max

  # The pods' cgroups, and their containers inside them.
  local name uid cid pid pod_cgroup own
  declare -A pod_path
  for name in burstable guaranteed; do
    cid=$("${cri[@]}" ps -q --label "io.kubernetes.pod.name=$name-vm-node" | head -n 1)
    uid=$("${cri[@]}" inspect -o go-template --template '{{index .status.labels "io.kubernetes.pod.uid"}}' "$cid")
    pid=$("${cri[@]}" inspect -o go-template --template '{{.info.pid}}' "$cid")
    if [[ $name == burstable ]]; then
      pod_cgroup=$(path_of "/kubepods/burstable/pod$uid" "$driver")
    else
      pod_cgroup=$(path_of "/kubepods/pod$uid" "$driver")
    fi
    pod_path[$name]=$pod_cgroup
    own=$(sed -n 's/^0:://p' "/proc/$pid/cgroup")
    log "$name pod $uid: cgroup $pod_cgroup; container $cid (pid $pid) in $own"
    [[ $own == "$pod_cgroup"/* ]] || fail "container $cid of $name runs in $own, not inside $pod_cgroup"
    expect "$pod_cgroup/pids.max" "$pod_pids_limit"
    if [[ $driver == systemd ]]; then
      systemctl is-active --quiet "$(basename "$pod_cgroup")" || fail "$(basename "$pod_cgroup") is not active"
      [[ $own == "$pod_cgroup"/cri-containerd-*.scope ]] || fail "the container is not in a cri-containerd scope: $own"
    fi
  done
  expect "${pod_path[burstable]}/cpu.weight" "$(weight "$(shares 250)")"
  expect "${pod_path[burstable]}/cpu.max" "max 100000"
  expect "${pod_path[burstable]}/memory.max" max
  expect "${pod_path[guaranteed]}/cpu.weight" "$(weight "$(shares 500)")"
  expect "${pod_path[guaranteed]}/cpu.max" "50000 100000"
  expect "${pod_path[guaranteed]}/memory.max" $((64 << 20))

  # Removing a pod removes its cgroup (and with systemd its slice unit), and burstable's weight
  # goes back to the minimum.
  rm "$rt/kubelet/manifests/burstable.yaml"
  gone() { [[ ! -d $cg$1 ]]; }
  wait_for 180 gone "${pod_path[burstable]}" \
    || fail "${pod_path[burstable]} is still there 180 s after the pod's manifest went"
  log "the burstable pod's cgroup ${pod_path[burstable]} is gone"
  if [[ $driver == systemd ]]; then
    local unit
    unit=$(basename "${pod_path[burstable]}")
    ! systemctl is-active --quiet "$unit" || fail "$unit is still active"
    log "  $unit: $(systemctl show -P ActiveState "$unit")"
  fi
  expect "$burstable/cpu.weight" 1

  # A pod removed while the kubelet was down: the restarted kubelet finds the slices and units of
  # its last run in place, and removes the orphaned pod's cgroup.
  kill "$kpid"
  wait "$kpid" || true
  rm "$rt/kubelet/manifests/guaranteed.yaml"
  start_kubelet
  wait_for 180 gone "${pod_path[guaranteed]}" \
    || fail "${pod_path[guaranteed]} of the orphaned pod is still there 180 s after the restart"
  log "after a restart, the orphaned guaranteed pod's cgroup ${pod_path[guaranteed]} is gone"
  if [[ $driver == systemd ]]; then
    ! systemctl is-active --quiet "$(basename "${pod_path[guaranteed]}")" || fail "the orphan's slice is still active"
  fi
  expect "$besteffort/cpu.weight" 1
  kill "$kpid"
  wait "$kpid" || true
  "${cri[@]}" rmp --force --all >/dev/null || die "removing the pods left failed"
  # containerd-down.sh wants cargo, which the guest lacks; the guest's disk is thrown away.
  local cpid
  cpid=$(cat "$rt/containerd/containerd.pid")
  kill "$cpid"
  stopped() { ! kill -0 "$1" 2>/dev/null; }
  wait_for 30 stopped "$cpid" || die "containerd (pid $cpid) did not stop"
  # The next driver starts from a clean hierarchy.
  if [[ $driver == systemd ]]; then
    systemctl stop kubepods.slice
  else
    find "$cg/kubepods" -depth -type d -exec rmdir {} +
  fi
  log "the kubelet's warnings and errors (driver $driver):"
  grep -E '^[WE][0-9]{4} ' "$rt/kubelet.log" | tail -n 20 || true
  log "driver $driver: PASS ($((SECONDS - started)) s)"
}

for driver in $KRT_CGROUP_DRIVERS; do
  run_driver "$driver"
done
log "PASS"
