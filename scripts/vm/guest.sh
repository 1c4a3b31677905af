#!/bin/bash
# Runs inside the test guest (krt-vm.service execs it from run.sh's control share, mounted at
# /run/krt-vm): mounts the host's shares, waits for boot to finish, runs the command, writes its
# exit status to /run/krt-vm/status. The unit powers the guest off when this script ends.
# Its output goes to the serial console, which run.sh streams to the host's stdout.
set -uo pipefail
ctl=/run/krt-vm
# The kernel turns \n into \r\n on a tty; the host's log wants plain lines.
stty -onlcr 2>/dev/null || true

say() { echo "krt-vm: $*"; }
finish() {
  echo "$1" >"$ctl/status.tmp" && mv "$ctl/status.tmp" "$ctl/status"
  sync
  exit 0
}

while read -r tag path; do
  mkdir -p "$path"
  if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro "$tag" "$path"; then
    say "cannot mount the host's $path (9p tag $tag)"
    finish 125
  fi
done <"$ctl/shares"

state=$(systemctl is-system-running --wait)
say "system $state ($(cut -d' ' -f1 /proc/uptime) s after boot)"
if [[ $state != running ]]; then
  systemctl --failed --no-legend --plain
fi

env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root)
while IFS= read -r line; do
  [[ -z $line ]] || env+=("$line")
done <"$ctl/env"
say "running $(cut -c6- "$ctl/command") in $(<"$ctl/cwd")"
cd "$(<"$ctl/cwd")" || finish 125
env -i "${env[@]}" /bin/bash "$ctl/command" </dev/null
status=$?
# Lazily, so that a process still running from a share does not hold up the power-off.
while read -r _ path; do umount -l "$path" 2>/dev/null; done <"$ctl/shares"
finish "$status"
