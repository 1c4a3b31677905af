# shellcheck shell=bash
# Shared by scripts/containerd-down.sh and scripts/runtime-down.sh (sourced, not run): what a
# private test runtime leaves on the host once its pods and daemon are gone. The caller defines
# log() and problem() (which records a failure and goes on).

# The cgroup root every test pod lives under (kubelet_testkit::TestRuntime::cgroup_root).
test_cgroup_root=kubelet-rs-test

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
