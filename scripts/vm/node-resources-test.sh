#!/bin/bash
# The kubelet's node resources on cgroup v2, in the KVM guest (systemd as PID 1, the unified
# hierarchy), the kubelet binary against containerd in the guest (SystemdCgroup = true for the
# systemd driver). Three parts (KRT_NODE_PARTS, default "cgroups cpu-manager eviction"):
#
# cgroups: under each cgroup driver, with two static pods, the v2 files read back: the QoS
#   cgroups (kubepods limited to allocatable, burstable and besteffort) with upstream's values, a
#   Burstable and a Guaranteed pod's cpu.weight, cpu.max, memory.max and pids.max, their
#   containers inside the pod's cgroup, MemoryQoS's memory.min (tiers, pods, containers) and
#   memory.high (containers), and a removed pod's cgroup gone (with systemd:
#   kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice, and its unit
#   stopped); the node's CPU and memory in /stats/summary, and a PSI memory trigger.
# cpu-manager: the static CPU manager policy with reservedSystemCPUs "0" (systemd driver, the
#   guest's 2 vCPUs): a Guaranteed static pod with cpu: 1 gets CPU 1 alone and a Burstable one
#   the shared pool "0" (the containers' cpuset.cpus), as the cpu_manager_state checkpoint says;
#   a kubelet restart keeps the containers and the assignment; the Guaranteed pod's removal
#   gives CPU 1 back to the Burstable container ("0-1").
# eviction: the kubelet in cluster mode (the test API server, crates/apiserver, from the
#   kubelet's target directory) with memory.available 150 MiB below what the node has: a
#   BestEffort pod holding 300 MiB is evicted (Failed, Evicted, upstream's message, the
#   DisruptionTarget condition, the Evicted event), a Burstable pod runs on untouched, and the
#   node's MemoryPressure is set and then cleared after the transition period.
#
#   sudo bash scripts/vm/node-resources-test.sh [KUBELET_BINARY]
#
# On the host it boots the guest through scripts/vm/run.sh and runs itself there (--in-guest).
# KUBELET_BINARY defaults to $CARGO_TARGET_DIR/debug/kubelet (build it with
# `cargo build -p kubelet -p kubelet-test-apiserver`; test-apiserver is taken from the same
# directory); crictl comes from ../shared/tools/get crictl or $CRICTL.
# KRT_CGROUP_DRIVERS (default "cgroupfs systemd": the systemd driver's containerd then serves the
# parts after) picks the drivers of the cgroups part; KRT_NODE_PARTS the parts. Exit status 0
# when every check passed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
log() { echo "node-resources-test: $*"; }
die() {
  log "FAIL: $*"
  exit 1
}

parts=${KRT_NODE_PARTS:-cgroups cpu-manager eviction}
if [[ ${1:-} != --in-guest ]]; then
  target=${CARGO_TARGET_DIR:-/var/cache/kubelet-rs/target}
  kubelet=${1:-$target/debug/kubelet}
  [[ -x $kubelet ]] || die "$kubelet is missing: build it with cargo build -p kubelet (CARGO_TARGET_DIR=$target)"
  kubelet=$(cd "$(dirname "$kubelet")" && pwd -P)/$(basename "$kubelet")
  apiserver=$(dirname "$kubelet")/test-apiserver
  [[ $parts != *eviction* || -x $apiserver ]] \
    || die "$apiserver is missing: build it with cargo build -p kubelet-test-apiserver"
  crictl=${CRICTL:-$("$repo/../shared/tools/get" crictl 2>/dev/null || true)}
  [[ -x $crictl ]] || die "crictl is missing: set CRICTL or provide ../shared/tools/get crictl"
  exec bash "$here/run.sh" --timeout "${KRT_VM_TIMEOUT:-900}" \
    --share "$(dirname "$kubelet")" --share "$(dirname "$crictl")" \
    --env "KRT_CGROUP_DRIVERS=${KRT_CGROUP_DRIVERS:-cgroupfs systemd}" \
    --env "KRT_NODE_PARTS=$parts" \
    -- bash "$here/node-resources-test.sh" --in-guest "$kubelet" "$crictl" "$apiserver"
fi

# --- in the guest ------------------------------------------------------------------------------
kubelet=$2
crictl=$3
apiserver=$4
[[ $(cat /proc/1/comm) == systemd ]] || die "PID 1 is $(cat /proc/1/comm), not systemd"
[[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]] || die "/sys/fs/cgroup is not the unified hierarchy"
cg=/sys/fs/cgroup
busybox=localhost/busybox:1.35
kube_reserved_cpu_milli=100
kube_reserved_memory=$((256 << 20))
pod_pids_limit=512
cri=()
kpid=
klog=
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
  cat <<EOT
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
EOT
}

# containerd for DRIVER in /tmp/kd-DRIVER (scripts/containerd-up.sh), and crictl on it
# ("${cri[@]}"): started once and kept for the next part with the same driver, as bringing it up
# takes about 40 s under TCG. $rt is its directory.
rt_driver=
rt=
use_runtime() { # DRIVER
  [[ $rt_driver != "$1" ]] || return 0
  [[ -z $rt_driver ]] || runtime_down
  local driver=$1 systemd=false started=$SECONDS
  rt=/tmp/kd-$driver
  [[ $driver == systemd ]] && systemd=true
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
  rt_driver=$driver
  log "containerd with the $driver cgroup driver up ($((SECONDS - started)) s)"
}
runtime_down() {
  # containerd-down.sh wants cargo, which the guest lacks; the guest's disk is thrown away.
  local cpid
  cpid=$(cat "$rt/containerd/containerd.pid")
  kill "$cpid"
  stopped() { ! kill -0 "$1" 2>/dev/null; }
  wait_for 30 stopped "$cpid" || die "containerd (pid $cpid) did not stop"
  rt_driver=
}
# After a part: the pods left removed and the kubepods hierarchy gone, for the next part.
reset_node() {
  "${cri[@]}" rmp --force --all >/dev/null || die "removing the pods left failed"
  if [[ $rt_driver == systemd ]]; then
    systemctl stop kubepods.slice
  elif [[ -d $cg/kubepods ]]; then
    find "$cg/kubepods" -depth -type d -exec rmdir {} +
  fi
}

# The kubelet on $rt's containerd with DIR/config.yaml, DIR/manifests and the root dir DIR/root;
# its log goes to DIR/kubelet.log ($klog).
start_kubelet() { # DIR [ARG...]
  local kd=$1
  shift
  klog=$kd/kubelet.log
  "$kubelet" --config="$kd/config.yaml" \
    --container-runtime-endpoint="$KUBELET_TEST_CRI_ENDPOINT" \
    --pod-manifest-path="$kd/manifests" --root-dir="$kd/root" \
    --cert-dir="$kd/pki" --container-log-symlink-dir="$kd/containers" \
    --hostname-override=vm-node --healthz-port=0 -v=2 "$@" >>"$klog" 2>&1 &
  kpid=$!
}
stop_kubelet() {
  kill "$kpid"
  wait "$kpid" || true
  kpid=
}
fail() {
  if [[ -n $klog ]]; then
    log "last lines of the kubelet's log ($klog):"
    tail -n 40 "$klog"
  fi
  [[ -z $kpid ]] || kill "$kpid" 2>/dev/null || true
  die "$*"
}
# The id of the pod's running container (empty when none runs).
running_container() { # POD_NAME
  "${cri[@]}" ps -q --state running --label "io.kubernetes.pod.name=$1" 2>/dev/null | head -n 1
}
# Every container the runtime has of the pod, running or not, one id a line.
all_containers() { # POD_NAME
  "${cri[@]}" ps -a -q --label "io.kubernetes.pod.name=$1"
}
summary() {
  busybox wget -qO- http://127.0.0.1:10255/stats/summary 2>/dev/null
}

# The KubeletConfiguration every part starts from, in DIR/config.yaml; a part appends its own
# fields after it.
kubelet_config() { # DIR DRIVER MEMORY_AVAILABLE_THRESHOLD
  cat >"$1/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: $2
cgroupRoot: /
cgroupsPerQOS: true
podLogsDir: $1/pod-logs
imageGCHighThresholdPercent: 100
readOnlyPort: 10255
evictionHard:
  memory.available: $3
  nodefs.available: 1%
  imagefs.available: 1%
EOF
}

run_driver() {
  local driver=$1
  log "=== cgroups: driver $driver ==="
  use_runtime "$driver"
  local kd=$rt/cgroups
  mkdir -p "$kd/manifests"
  kubelet_config "$kd" "$driver" 1Mi
  cat >>"$kd/config.yaml" <<EOF
podPidsLimit: $pod_pids_limit
enforceNodeAllocatable: [pods]
kubeReserved:
  cpu: ${kube_reserved_cpu_milli}m
  memory: $((kube_reserved_memory >> 20))Mi
kernelMemcgNotification: true
featureGates:
  MemoryQoS: true
memoryThrottlingFactor: 0.9
EOF
  # A UID with dashes, which the systemd driver's slice names turn into underscores.
  static_pod burstable 0b1d5c0e-5c09-4e1a-9a5e-7f1e2d3c4b5a "      requests: {cpu: 250m, memory: 32Mi}
      limits: {memory: 128Mi}" >"$kd/manifests/burstable.yaml"
  static_pod guaranteed "" "      requests: {cpu: 500m, memory: 64Mi}
      limits: {cpu: 500m, memory: 64Mi}" >"$kd/manifests/guaranteed.yaml"
  local started=$SECONDS
  start_kubelet "$kd"
  both_running() {
    local pod
    for pod in burstable-vm-node guaranteed-vm-node; do
      [[ $(running_container "$pod") ]] || return 1
    done
  }
  wait_for 300 both_running || fail "the static pods did not run within 300 s"
  log "both pods running $((SECONDS - started)) s after the kubelet's start"

  # The node's figures on v2 (the eviction manager's input): its CPU and working set in
  # /stats/summary; and memory pressure watched through PSI.
  node_stats() {
    summary | jq -e '.node.cpu.usageCoreNanoSeconds > 0 and .node.memory.workingSetBytes > 0' >/dev/null
  }
  wait_for 60 node_stats || fail "/stats/summary has no node CPU and memory"
  log "/stats/summary has the node's CPU and memory"
  ! grep -q "summary without the node" "$klog" || fail "a summary lacked the node's figures"
  ! grep -q "no memory pressure notifications" "$klog" || fail "no PSI trigger"

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
  if [[ $driver == cgroupfs ]]; then
    # Every controller the root offers is delegated down to the pods, as runc's manager does.
    local controller offered
    read -ra offered <"$cg/cgroup.controllers"
    for controller in "${offered[@]}"; do
      grep -qw "$controller" "$cg$burstable/cgroup.subtree_control" \
        || die "$burstable delegates $(cat "$cg$burstable/cgroup.subtree_control"), not $controller"
    done
    log "  $burstable/cgroup.subtree_control = $(cat "$cg$burstable/cgroup.subtree_control")"
  fi
  # MemoryQoS: the tiers protect their pods' memory requests, kubepods Guaranteed + Burstable.
  expect "$burstable/memory.min" $((32 << 20))
  expect "$kubepods/memory.min" $((96 << 20))
  expect "$besteffort/memory.min" 0

  # The pods' cgroups, and their containers inside them.
  local name uid cid pid pod_cgroup own
  declare -A pod_path container_path
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
    container_path[$name]=$own
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
  expect "${pod_path[burstable]}/memory.max" $((128 << 20))
  expect "${pod_path[guaranteed]}/cpu.weight" "$(weight "$(shares 500)")"
  expect "${pod_path[guaranteed]}/cpu.max" "50000 100000"
  expect "${pod_path[guaranteed]}/memory.max" $((64 << 20))
  # MemoryQoS: memory.min from the requests, on pods and containers; memory.high between a
  # container's request and limit (request + 0.9 x (limit - request), in whole pages), none for a
  # container whose request is its limit.
  expect "${pod_path[burstable]}/memory.min" $((32 << 20))
  expect "${pod_path[guaranteed]}/memory.min" $((64 << 20))
  expect "${container_path[burstable]}/memory.min" $((32 << 20))
  expect "${container_path[burstable]}/memory.high" "$(pages $(((32 << 20) + (128 - 32) * (1 << 20) * 9 / 10)))"
  expect "${container_path[guaranteed]}/memory.min" $((64 << 20))
  expect "${container_path[guaranteed]}/memory.high" max

  # Removing a pod removes its cgroup (and with systemd its slice unit), and burstable's weight
  # goes back to the minimum.
  rm "$kd/manifests/burstable.yaml"
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
  expect "$burstable/memory.min" 0
  expect "$kubepods/memory.min" $((64 << 20))

  # A pod removed while the kubelet was down: the restarted kubelet finds the slices and units of
  # its last run in place, and removes the orphaned pod's cgroup.
  stop_kubelet
  rm "$kd/manifests/guaranteed.yaml"
  start_kubelet "$kd"
  wait_for 180 gone "${pod_path[guaranteed]}" \
    || fail "${pod_path[guaranteed]} of the orphaned pod is still there 180 s after the restart"
  log "after a restart, the orphaned guaranteed pod's cgroup ${pod_path[guaranteed]} is gone"
  if [[ $driver == systemd ]]; then
    ! systemctl is-active --quiet "$(basename "${pod_path[guaranteed]}")" || fail "the orphan's slice is still active"
  fi
  expect "$besteffort/cpu.weight" 1
  expect "$kubepods/memory.min" 0
  stop_kubelet
  reset_node
  log "the kubelet's warnings and errors (driver $driver):"
  grep -E '^[WE][0-9]{4} ' "$klog" | tail -n 20 || true
  log "cgroups, driver $driver: PASS ($((SECONDS - started)) s)"
}


# The kernel's CPU list of the container's own cgroup (cpuset.cpus), found from its process.
container_cpus() { # CONTAINER_ID
  local pid own
  pid=$("${cri[@]}" inspect -o go-template --template '{{.info.pid}}' "$1" 2>/dev/null) || return 1
  own=$(sed -n 's/^0:://p' "/proc/$pid/cgroup" 2>/dev/null) || return 1
  [[ -n $own ]] || return 1
  cat "$cg$own/cpuset.cpus" 2>/dev/null
}
# Waits until the container's cpuset.cpus is CPUS.
expect_cpus() { # WHAT CONTAINER_ID CPUS
  local got=
  has_cpus() { got=$(container_cpus "$2") && [[ $got == "$3" ]]; }
  wait_for 120 has_cpus "$@" \
    || fail "$1's container $2: cpuset.cpus is '$got' 120 s on, expected '$3'"
  local pid
  pid=$("${cri[@]}" inspect -o go-template --template '{{.info.pid}}' "$2")
  log "  $1: $cg$(sed -n 's/^0:://p' "/proc/$pid/cgroup")/cpuset.cpus = $got"
}
checkpoint_is() { # ROOT_DIR JQ_EXPRESSION: true when the checkpoint parses and the expression holds
  jq -e "$2" "$1/cpu_manager_state" >/dev/null 2>&1
}

# The static CPU manager policy: CPU 0 reserved, CPU 1 to the Guaranteed pod with cpu: 1.
run_cpu_manager() {
  local driver=systemd started=$SECONDS
  log "=== cpu-manager: static policy, reservedSystemCPUs 0, driver $driver ==="
  [[ $(cat /sys/devices/system/cpu/online) == 0-1 ]] \
    || die "the guest's CPUs are $(cat /sys/devices/system/cpu/online), expected 0-1 (qemu -smp 2)"
  use_runtime "$driver"
  # A root dir of its own: the CPU manager refuses another policy against a checkpoint.
  local kd=$rt/cpu-manager
  mkdir -p "$kd/manifests"
  kubelet_config "$kd" "$driver" 1Mi
  cat >>"$kd/config.yaml" <<EOT
cpuManagerPolicy: static
cpuManagerReconcilePeriod: 1s
reservedSystemCPUs: "0"
EOT
  static_pod guaranteed "" "      limits: {cpu: \"1\", memory: 64Mi}" >"$kd/manifests/guaranteed.yaml"
  static_pod burstable "" "      requests: {cpu: 250m}" >"$kd/manifests/burstable.yaml"
  start_kubelet "$kd"
  both_running() { [[ $(running_container guaranteed-vm-node) && $(running_container burstable-vm-node) ]]; }
  wait_for 300 both_running || fail "the static pods did not run within 300 s"
  log "both pods running $((SECONDS - started)) s after the kubelet's start"
  local g_id b_id g_uid root=$kd/root
  g_id=$(running_container guaranteed-vm-node)
  b_id=$(running_container burstable-vm-node)
  g_uid=$("${cri[@]}" inspect -o go-template --template '{{index .status.labels "io.kubernetes.pod.uid"}}' "$g_id")

  # The checkpoint: upstream's static policy state, CPU 1 for the Guaranteed container.
  local assigned=".policyName == \"static\" and .defaultCpuSet == \"0\" and (.entries | length) == 1 and .entries[\"$g_uid\"].main == \"1\""
  wait_for 60 checkpoint_is "$root" "$assigned" \
    || fail "$root/cpu_manager_state is '$(cat "$root/cpu_manager_state" 2>&1)' 60 s on, expected policy static, defaultCpuSet 0 and entries {$g_uid: {main: 1}}"
  log "  $root/cpu_manager_state: $(jq -c 'del(.checksum)' "$root/cpu_manager_state")"
  expect_cpus guaranteed "$g_id" 1
  expect_cpus burstable "$b_id" 0

  # A restart keeps the containers (none created anew) and the assignment.
  stop_kubelet
  start_kubelet "$kd"
  restarted() { (($(grep -c "CPU manager started" "$klog") == 2)); }
  wait_for 120 restarted || fail "the restarted kubelet's CPU manager did not start within 120 s"
  sleep 5 # a few sync and reconcile rounds of the new kubelet
  local name id want
  for name in guaranteed burstable; do
    want=$g_id
    [[ $name == burstable ]] && want=$b_id
    id=$(all_containers "$name-vm-node")
    [[ $id == "$want" ]] || fail "after the restart, $name's containers are '${id//$'\n'/ }', expected just $want"
    [[ $(running_container "$name-vm-node") == "$want" ]] || fail "after the restart, $name's container $want is not running"
  done
  log "after the restart: the same containers, $g_id and $b_id, still running"
  checkpoint_is "$root" "$assigned" \
    || fail "after the restart, $root/cpu_manager_state is '$(cat "$root/cpu_manager_state")', expected the same assignment"
  log "  $root/cpu_manager_state: $(jq -c 'del(.checksum)' "$root/cpu_manager_state")"
  expect_cpus guaranteed "$g_id" 1
  expect_cpus burstable "$b_id" 0

  # The Guaranteed pod goes: CPU 1 returns to the shared pool.
  rm "$kd/manifests/guaranteed.yaml"
  expect_cpus burstable "$b_id" 0-1
  local released='.defaultCpuSet == "0-1" and (.entries | length) == 0'
  wait_for 60 checkpoint_is "$root" "$released" \
    || fail "$root/cpu_manager_state is '$(cat "$root/cpu_manager_state")' 60 s after the Guaranteed pod went, expected defaultCpuSet 0-1 and no entries"
  log "  $root/cpu_manager_state: $(jq -c 'del(.checksum)' "$root/cpu_manager_state")"
  stop_kubelet
  reset_node
  log "the kubelet's warnings and errors (cpu-manager):"
  grep -E '^[WE][0-9]{4} ' "$klog" | tail -n 20 || true
  log "cpu-manager: PASS ($((SECONDS - started)) s)"
}

# The test API server on the guest's loopback: plain HTTP, where every client is an administrator.
api=http://127.0.0.1:18080
api_get() { busybox wget -qO- "$api$1" 2>/dev/null; }
api_create_pod() { # NAME SCRIPT RESOURCES_JSON
  local body
  body=$(jq -cn --arg name "$1" --arg script "$2" --arg image "$busybox" --argjson resources "$3" '{
    apiVersion: "v1", kind: "Pod", metadata: {name: $name, namespace: "default"},
    spec: {nodeName: "vm-node", terminationGracePeriodSeconds: 2, containers: [{name: "app",
      image: $image, imagePullPolicy: "IfNotPresent", command: ["/bin/sh", "-c", $script],
      resources: $resources}]}}')
  busybox wget -qO- --header "Content-Type: application/json" --post-data "$body" \
    "$api/api/v1/namespaces/default/pods" >/dev/null || fail "creating pod $1 through $api failed"
}
node_condition() { # TYPE: its status on the Node
  api_get /api/v1/nodes/vm-node | jq -r --arg t "$1" '.status.conditions[]? | select(.type == $t) | .status'
}
pod_status() { # NAME
  api_get "/api/v1/namespaces/default/pods/$1" | jq -c .status
}

# Memory pressure on v2: a pod past memory.available's threshold is evicted, the other one stays.
run_eviction() {
  local driver=systemd started=$SECONDS
  log "=== eviction: memory.available on cgroup v2, driver $driver, cluster mode ==="
  use_runtime "$driver"
  local kd=$rt/eviction
  mkdir -p "$kd/manifests"
  "$apiserver" "${api#http://}" >"$kd/apiserver.url" 2>"$kd/apiserver.log" &
  local apid=$!
  wait_for 30 api_get /api >/dev/null || fail "the test API server did not answer at $api within 30 s"
  cat >"$kd/kubeconfig" <<EOT
apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "$api"}}]
users: [{name: test, user: {}}]
contexts: [{name: test, context: {cluster: test, user: test}}]
current-context: test
EOT
  # memory.available as the kubelet computes it on v2 (crates/stats host::memory, cAdvisor's
  # root figures): MemTotal - working set, the working set being MemTotal - MemFree - the root
  # cgroup's inactive_file; the threshold 150 MiB below what the node has before the kubelet.
  local free inactive available
  free=$(($(awk '/^MemFree:/ {print $2}' /proc/meminfo) * 1024))
  inactive=$(awk '$1 == "inactive_file" {print $2}' "$cg/memory.stat")
  available=$((free + inactive))
  local threshold_kib=$(((available - (150 << 20)) / 1024))
  log "memory.available before the kubelet: MemFree $free + inactive_file $inactive = $available bytes; threshold ${threshold_kib}Ki"
  kubelet_config "$kd" "$driver" "${threshold_kib}Ki"
  cat >>"$kd/config.yaml" <<EOT
kernelMemcgNotification: true
nodeStatusUpdateFrequency: 2s
evictionPressureTransitionPeriod: 10s
EOT
  # Both pods are there, bound to the node, when the kubelet starts. A request keeps the quiet
  # pod out of the first ranks (it uses less than it asked for); tail keeps the whole
  # newline-free input until its writer ends: 300 MiB of anonymous memory in the hog's cgroup.
  api_create_pod quiet "trap 'exit 0' TERM; sleep 3600 & wait" '{"requests": {"memory": "64Mi"}}'
  api_create_pod hog "(head -c 300m /dev/zero; sleep 3600) | tail" '{}'
  start_kubelet "$kd" --kubeconfig="$kd/kubeconfig" --node-ip=127.0.0.1

  local q_id=
  quiet_running() { q_id=$(running_container quiet) && [[ -n $q_id ]]; }
  wait_for 300 quiet_running || fail "pod quiet has no running container 300 s on: $(pod_status quiet)"
  log "pod quiet running (container $q_id) $((SECONDS - started)) s after the start"
  local pressure_seen=false status=
  evicted() {
    [[ $(node_condition MemoryPressure) == True ]] && pressure_seen=true
    status=$(pod_status hog)
    [[ $(jq -r .phase <<<"$status") == Failed ]]
  }
  wait_for 300 evicted || fail "pod hog is not Failed 300 s on: $status"
  log "pod hog Failed $((SECONDS - started)) s after the start: $(jq -c '{phase, reason, message}' <<<"$status")"
  [[ $(jq -r .reason <<<"$status") == Evicted ]] || fail "pod hog's status.reason is $(jq .reason <<<"$status"), expected Evicted"
  local message prefix suffix
  message=$(jq -r .message <<<"$status")
  prefix="The node was low on resource: memory. Threshold quantity: ${threshold_kib}Ki, available: "
  suffix=", request is 0, has larger consumption of memory. "
  [[ $message == "$prefix"*". Container app was using "*"$suffix" ]] \
    || fail "pod hog's status.message is '$message', expected '$prefix...Ki. Container app was using ...$suffix'"
  local disruption
  disruption=$(jq -c '.conditions[]? | select(.type == "DisruptionTarget") | {status, reason, message}' <<<"$status")
  [[ $disruption == "$(jq -cn --arg m "$message" '{status: "True", reason: "TerminationByKubelet", message: $m}')" ]] \
    || fail "pod hog's DisruptionTarget condition is '$disruption', expected True, TerminationByKubelet and the message"
  log "  DisruptionTarget: $disruption"
  local event=
  evicted_event() {
    event=$(api_get /api/v1/namespaces/default/events \
      | jq -c '[.items[] | select(.involvedObject.name == "hog" and .reason == "Evicted") | {type, message}]')
    [[ $event != "[]" && -n $event ]]
  }
  wait_for 60 evicted_event || fail "no Evicted event for pod hog 60 s on"
  [[ $event == "$(jq -cn --arg m "$message" '[{type: "Warning", message: $m}]')" ]] \
    || fail "pod hog's Evicted events are $event, expected one Warning with the status message"
  log "  event: $event"

  # MemoryPressure was reported, and clears once the transition period (10 s) has passed.
  local now=
  cleared() {
    now=$(node_condition MemoryPressure)
    [[ $now == True ]] && pressure_seen=true
    [[ $pressure_seen == true && $now == False ]]
  }
  wait_for 120 cleared || fail "node MemoryPressure is '$now' 120 s after the eviction (seen True: $pressure_seen), expected True, then False"
  log "node MemoryPressure went True, then False $((SECONDS - started)) s after the start"
  log "memory.available now: $(summary | jq '.node.memory.availableBytes') bytes in /stats/summary"

  local quiet
  quiet=$(pod_status quiet)
  [[ $(jq -r '.phase, .containerStatuses[0].restartCount' <<<"$quiet" | paste -sd ' ') == "Running 0" ]] \
    || fail "pod quiet's status is $quiet, expected Running with restartCount 0"
  [[ $(all_containers quiet) == "$q_id" && $(running_container quiet) == "$q_id" ]] \
    || fail "pod quiet's containers are '$(all_containers quiet | tr '\n' ' ')', expected just $q_id, running"
  log "pod quiet: Running, restartCount 0, the same container $q_id"
  [[ -z $(running_container hog) ]] || fail "the evicted pod hog still runs container $(running_container hog)"
  local evictions
  evictions=$(grep -c "Evicting pod" "$klog" || true)
  ((evictions == 1)) || fail "the kubelet's log has $evictions 'Evicting pod' lines, expected 1"
  ! grep -q "no memory pressure notifications" "$klog" || fail "no PSI trigger: $(grep "no memory pressure notifications" "$klog")"
  log "PSI memory trigger armed; woken by memory pressure $(grep -c "memory threshold crossed or memory pressure" "$klog" || true) times"
  stop_kubelet
  kill "$apid"
  wait "$apid" || true
  reset_node
  log "the kubelet's warnings and errors (eviction):"
  grep -E '^[WE][0-9]{4} ' "$klog" | tail -n 20 || true
  log "eviction: PASS ($((SECONDS - started)) s)"
}

guest_started=$SECONDS
for part in $KRT_NODE_PARTS; do
  part_started=$SECONDS
  case $part in
  cgroups)
    for driver in $KRT_CGROUP_DRIVERS; do
      run_driver "$driver"
    done
    ;;
  cpu-manager) run_cpu_manager ;;
  eviction) run_eviction ;;
  *) die "KRT_NODE_PARTS: unknown part $part (expected cgroups, cpu-manager or eviction)" ;;
  esac
  log "part $part: $((SECONDS - part_started)) s"
done
[[ -z $rt_driver ]] || runtime_down
log "PASS ($((SECONDS - guest_started)) s)"
