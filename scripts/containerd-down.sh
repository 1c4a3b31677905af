#!/bin/bash
# Stop the private containerd that scripts/containerd-up.sh started in RT_DIR, and undo
# everything the test run left on the host: pods, the daemon, stray shims and containers, the
# CNI bridge, mounts under RT_DIR, the test cgroups, and RT_DIR itself.
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

log() { echo "containerd-down: $*" >&2; }
failed=0
problem() { log "$*"; failed=1; }

if [[ ! -d $1 ]]; then
  log "$1 does not exist: nothing to do"
  exit 0
fi
rt=$(cd "$1" && pwd -P)
[[ -f $rt/.kubelet-rs-test-runtime ]] || { log "$rt was not made by containerd-up.sh: refusing to touch it"; exit 1; }
cd_dir=$rt/containerd
sock=$cd_dir/containerd.sock
pid_file=$cd_dir/containerd.pid

# 1. and 2. The pods, then the daemon, by its pid.
daemon_pid=$(our_daemon "$pid_file" "$cd_dir/config.toml")
[[ -z $daemon_pid ]] || stop_daemon "$daemon_pid" "$sock" containerd
rm -f "$pid_file"

# 3. Containers the pod cleanup missed, through runc's state under our root (one dir per
#    containerd namespace), then the shims that served this daemon's address.
if [[ -d $cd_dir/runc-root ]]; then
  for state in "$cd_dir"/runc-root/*/; do
    [[ -d $state ]] || continue
    for id in $(runc --root "$state" list -q 2>/dev/null); do
      log "removing leftover container $id"
      runc --root "$state" delete --force "$id" || problem "runc delete $id failed"
    done
  done
fi
for cmdline in /proc/[0-9]*/cmdline; do
  pid=${cmdline#/proc/}
  pid=${pid%/cmdline}
  args=$(tr '\0' ' ' <"$cmdline" 2>/dev/null) || continue
  if [[ $args == *containerd-shim* && $args == *"-address $sock "* ]]; then
    log "killing leftover shim pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
    # A killed shim leaves its socket behind, named (containerd 1.6) by the hash of
    # "<daemon address>/<namespace>/<id>".
    namespace=$(sed -n 's/.* -namespace \([^ ]*\) .*/\1/p' <<<"$args")
    id=$(sed -n 's/.* -id \([^ ]*\) .*/\1/p' <<<"$args")
    hash=$(printf '%s' "$sock/$namespace/$id" | sha256sum | cut -d' ' -f1)
    rm -f "/run/containerd/s/$hash"
  fi
done

# 4. The bridge, mounts, test cgroups and RT_DIR.
cleanup_host "$rt"

exit "$failed"
