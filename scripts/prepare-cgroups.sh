#!/bin/bash
# Give every cgroup controller its own v1 hierarchy on a hybrid (v1 + unified) host, as systemd's
# hybrid layout does. Without it a controller the kernel left on the unified hierarchy (hugetlb
# on these machines) makes crun refuse every container: "cgroups in hybrid mode not supported,
# drop all controllers from cgroupv2". Pure v1 and pure v2 hosts are left alone. Idempotent.
set -euo pipefail

unified=/sys/fs/cgroup/unified
[[ -f $unified/cgroup.controllers ]] || exit 0
read -r -a controllers <"$unified/cgroup.controllers" || true
for controller in "${controllers[@]}"; do
  dir=/sys/fs/cgroup/$controller
  mkdir -p "$dir"
  mount -t cgroup -o "$controller" cgroup "$dir"
  echo "prepare-cgroups: mounted the $controller controller as a v1 hierarchy at $dir"
done
