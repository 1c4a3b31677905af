# shellcheck shell=bash
# Shared by scripts/containerd-down.sh and scripts/runtime-down.sh (sourced, not run): stopping
# a private test runtime and what it leaves on the host once its pods and daemon are gone. The
# caller defines log() and problem() (which records a failure and goes on).

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# The cgroup root every test pod lives under (kubelet_testkit::TestRuntime::cgroup_root).
test_cgroup_root=kubelet-rs-test

# our_daemon <pid file> <text>: prints the pid in the file while its process's command line
# still holds <text> (pids get reused), else nothing.
our_daemon() {
  local pid
  [[ -f $1 ]] || return 0
  pid=$(cat "$1")
  if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$2"; then
    echo "$pid"
  fi
}

# stop_daemon <pid> <CRI socket> <name>: the pods first, through CRI (containers outlive the
# daemon otherwise), then the daemon by its pid: SIGTERM, SIGKILL after 10 s.
stop_daemon() {
  local pid=$1 sock=$2 name=$3
  # KUBELET_RS_CRI_CLEANUP: a cri-cleanup binary built beforehand (scripts/run-example.sh).
  if [[ -n ${KUBELET_RS_CRI_CLEANUP:-} ]]; then
    "$KUBELET_RS_CRI_CLEANUP" "unix://$sock"
  else
    (cd "$repo_root" && cargo run --quiet -p kubelet-testkit --bin cri-cleanup -- "unix://$sock")
  fi || problem "removing the remaining CRI pods failed"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored SIGTERM for 10 s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
}

mounts_under() { findmnt -rn -o TARGET | awk -v dir="$1/" 'index($0, dir) == 1'; }

# Mount points of the v1 hierarchies and of cgroup2; optional fields shift the columns of
# mountinfo, so the filesystem type is found after the "-" separator.
cgroup_mounts() {
  awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) ~ /^cgroup2?$/) print $5; break } }' \
    /proc/self/mountinfo
}

# cleanup_host <RT_DIR>: the CNI bridge named in RT_DIR/network.env, mounts under RT_DIR
# (deepest first), the test cgroups, then RT_DIR itself (never across a mount).
cleanup_host() {
  local rt=$1 bridge=kubeletrs0 target mount_point dir
  if [[ -f $rt/network.env ]]; then
    bridge=$(sed -n 's/^bridge=//p' "$rt/network.env")
  fi
  if ip link show "$bridge" >/dev/null 2>&1; then
    ip link del "$bridge" || problem "cannot delete the bridge $bridge"
  fi

  while read -r target; do
    umount "$target" || problem "cannot unmount $target"
  done < <(mounts_under "$rt" | sort -r)

  # rmdir only removes empty cgroups.
  while read -r mount_point; do
    dir=$mount_point/$test_cgroup_root
    [[ -d $dir ]] || continue
    find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null \
      || problem "cgroups are still in use under $dir"
  done < <(cgroup_mounts)

  if [[ -n $(mounts_under "$rt") ]]; then
    problem "mounts remain under $rt: leaving it in place"
  else
    rm -rf "$rt"
  fi
}
