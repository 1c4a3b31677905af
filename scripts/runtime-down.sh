#!/bin/bash
# Stop the built-in runtime that scripts/runtime-up.sh started in RT_DIR and undo everything the
# test run left on the host: pods (through CRI, so their monitors and containers go too), the
# daemon, containers the pod cleanup missed, the CNI bridge, mounts, test cgroups and RT_DIR.
# Exits non-zero when something could not be cleaned up; it still does all the steps it can.
set -euo pipefail

if (($# != 1)); then
  echo "usage: $0 RT_DIR" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/host-cleanup.sh
source "$here/lib/host-cleanup.sh"
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

log() { echo "runtime-down: $*" >&2; }
failed=0
problem() { log "$*"; failed=1; }

if [[ ! -d $1 ]]; then
  log "$1 does not exist: nothing to do"
  exit 0
fi
rt=$(cd "$1" && pwd -P)
[[ -f $rt/.kubelet-rs-test-runtime && -d $rt/runtime ]] \
  || { log "$rt was not made by runtime-up.sh: refusing to touch it"; exit 1; }
dir=$rt/runtime
sock=$dir/cri.sock
pid_file=$dir/runtime.pid

# 1. and 2. The pods, then the daemon, by its pid.
daemon_pid=$(our_daemon "$pid_file" "unix://$sock")
[[ -z $daemon_pid ]] || stop_daemon "$daemon_pid" "$sock" "the runtime"
rm -f "$pid_file"

# 3. Containers the pod cleanup missed: each OCI runtime's state root holds them, and killing a
#    container's init ends its monitor too.
for state in "$dir"/state/oci/*/; do
  [[ -d $state ]] || continue
  binary=$(basename "$state")
  command -v "$binary" >/dev/null || continue
  for id in $("$binary" --root "$state" list -q 2>/dev/null); do
    log "removing leftover container $id ($binary)"
    "$binary" --root "$state" delete --force "$id" || problem "$binary delete $id failed"
  done
done

# 4. The bridge, mounts (rootfs overlays, pinned namespaces, shm), test cgroups and RT_DIR.
cleanup_host "$rt"

exit "$failed"
