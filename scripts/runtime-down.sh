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

# The pid is ours only while its command line still names our socket (pids get reused).
daemon_pid=
if [[ -f $pid_file ]]; then
  pid=$(cat "$pid_file")
  if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "unix://$sock"; then
    daemon_pid=$pid
  fi
fi

# 1. Pods first: monitors and containers outlive the daemon otherwise.
if [[ -n $daemon_pid ]]; then
  (cd "$here/.." && cargo run --quiet -p kubelet-testkit --bin cri-cleanup -- "unix://$sock") \
    || problem "removing the remaining CRI pods failed"
fi

# 2. The daemon, by its pid.
if [[ -n $daemon_pid ]]; then
  kill -TERM "$daemon_pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$daemon_pid" 2>/dev/null; then
    log "the runtime (pid $daemon_pid) ignored SIGTERM for 10 s: killing it"
    kill -KILL "$daemon_pid" 2>/dev/null || true
    while kill -0 "$daemon_pid" 2>/dev/null; do sleep 0.1; done
  fi
fi
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
