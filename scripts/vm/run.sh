#!/bin/bash
# Boot the KVM test guest (scripts/vm/image.sh builds it once), run one command in it as root,
# stream the guest's console and the command's output to stdout, and exit with its status.
#
#   sudo bash scripts/vm/run.sh [OPTIONS] -- COMMAND [ARG...]
#   sudo bash scripts/vm/run.sh -- sh -c 'stat -fc %T /sys/fs/cgroup; containerd --version'
#
# The guest: Debian 12, systemd as PID 1, the unified cgroup hierarchy
# (systemd.unified_cgroup_hierarchy=1), no network, `qemu-system-x86_64 -enable-kvm -m 4G -smp 2`.
# KVM needs hardware virtualization (kvm_intel or kvm_amd): where /dev/kvm is PVM (the kvm_pvm
# module, as on the project's Firecracker machines) only a PVM-patched guest kernel boots, so the
# stock Debian kernel runs under qemu's TCG emulation instead (about 45 s to boot, and
# several times slower to run); KRT_VM_ACCEL=kvm|tcg overrides the choice.
# Its disk is opened in snapshot mode: writes go to a throwaway overlay, the cached image stays
# as built, and every run starts from the same state.
#
# Shared read-only (9p) at the same paths as on the host, so test binaries find their files: this
# repository, $CARGO_TARGET_DIR (default /var/cache/kubelet-rs/target, as scripts/test.sh) when it
# exists, and each --share DIR. The command runs in the current directory when that lies in a
# share, else in /, with a clean environment: PATH, HOME=/root, CARGO_TARGET_DIR and each --env.
# Before it runs, the guest waits for boot to finish and prints the system state (running, or
# degraded with the failed units).
#
# Options:
#   --timeout SECONDS   the whole run, boot included (default 600); then qemu is killed, exit 124
#   --share DIR         one more directory to share read-only (repeatable)
#   --env NAME=VALUE    one more variable for the command (repeatable)
# Exit status: the command's; 124 on timeout; 125 when the guest could not run it (no status).
# Environment: KRT_VM_CACHE (see image.sh), KRT_VM_ACCEL (kvm or tcg; default: see above).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
timeout=600
shares=("$repo")
envs=()
log() { echo "vm-run: $*" >&2; }
die() {
  log "$*"
  exit 125
}
usage() {
  echo "usage: $0 [--timeout SECONDS] [--share DIR]... [--env NAME=VALUE]... -- COMMAND [ARG...]" >&2
  exit 2
}

while (($#)); do
  case $1 in
  --timeout)
    [[ ${2:-} =~ ^[0-9]+$ ]] || usage
    timeout=$2
    shift 2
    ;;
  --share)
    [[ -d ${2:-} ]] || die "--share ${2:-}: no such directory"
    shares+=("$(cd "$2" && pwd -P)")
    shift 2
    ;;
  --env)
    [[ ${2:-} == [A-Za-z_]*=* ]] || usage
    envs+=("$2")
    shift 2
    ;;
  --)
    shift
    break
    ;;
  *) usage ;;
  esac
done
(($#)) || usage

((EUID == 0)) || die "must run as root (KVM, and the image cache under /var/cache)"
accel=${KRT_VM_ACCEL:-}
if [[ -z $accel ]]; then
  if [[ -d /sys/module/kvm_intel || -d /sys/module/kvm_amd ]]; then
    accel=kvm
  else
    accel=tcg
    log "no hardware KVM here ($(if [[ -d /sys/module/kvm_pvm ]]; then echo "/dev/kvm is PVM, which boots PVM guest kernels only"; else echo "no kvm_intel or kvm_amd"; fi)): emulating with TCG"
  fi
fi
case $accel in
kvm)
  [[ -c /dev/kvm && -w /dev/kvm ]] || die "/dev/kvm is missing or not writable: set KRT_VM_ACCEL=tcg to emulate"
  accel_args=(-enable-kvm -cpu host)
  ;;
tcg) accel_args=(-accel "tcg,thread=multi" -cpu max) ;;
*) die "KRT_VM_ACCEL=$accel: expected kvm or tcg" ;;
esac
if ! command -v qemu-system-x86_64 >/dev/null; then
  log "installing qemu-system-x86"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get install -y -q --no-install-recommends qemu-system-x86; } >&2 \
    || die "apt-get install qemu-system-x86 failed"
fi

image=$(bash "$here/image.sh") || die "building the guest image failed (see above)"
for file in disk.img vmlinuz initrd.img; do
  [[ -f $image/$file ]] || die "$image/$file is missing: remove $image and run image.sh again"
done

target=${CARGO_TARGET_DIR:-/var/cache/kubelet-rs/target}
if [[ -d $target ]]; then
  shares+=("$(cd "$target" && pwd -P)")
  envs+=("CARGO_TARGET_DIR=$target")
fi

# A directory inside another share (or given twice) is there already.
unique=()
for dir in "${shares[@]}"; do
  keep=1
  for other in "${shares[@]}"; do
    [[ $dir == "$other" || $dir/ != "$other"/* ]] || keep=
  done
  for other in "${unique[@]}"; do
    [[ $dir != "$other" ]] || keep=
  done
  [[ -z $keep ]] || unique+=("$dir")
done
shares=("${unique[@]}")

ctl=$(mktemp -d /tmp/krt-vm.XXXXXX)
qemu_pid=
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill -KILL "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
  fi
  rm -rf "$ctl"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The control share: what the guest runs (guest.sh), the shares to mount, the command and its
# environment; the guest writes the command's status back here.
cp "$here/guest.sh" "$ctl/guest.sh"
qemu_shares=()
: >"$ctl/shares"
for i in "${!shares[@]}"; do
  qemu_shares+=(-virtfs "local,path=${shares[$i]},mount_tag=s$i,security_model=none,readonly=on,multidevs=remap")
  echo "s$i ${shares[$i]}" >>"$ctl/shares"
done
printf '%s\n' "${envs[@]}" >"$ctl/env"
cwd=/
for dir in "${shares[@]}"; do
  [[ $PWD/ != "$dir"/* ]] || cwd=$PWD
done
echo "$cwd" >"$ctl/cwd"
{
  printf 'exec'
  printf ' %q' "$@"
  printf '\n'
} >"$ctl/command"

log "booting $image with $accel (timeout ${timeout} s): $*"
start=$SECONDS
# stdin from /dev/null: the console is output only, and a terminal is never put in raw mode.
qemu-system-x86_64 "${accel_args[@]}" -m 4G -smp 2 \
  -nodefaults -no-user-config -display none -no-reboot \
  -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 quiet loglevel=4 systemd.unified_cgroup_hierarchy=1 systemd.show_status=error krt.run=1" \
  -drive "file=$image/disk.img,format=raw,if=virtio,snapshot=on" \
  -virtfs "local,path=$ctl,mount_tag=krtctl,security_model=none" \
  "${qemu_shares[@]}" \
  -device virtio-rng-pci -nic none \
  -chardev stdio,id=console,signal=off -serial chardev:console \
  </dev/null &
qemu_pid=$!

while kill -0 "$qemu_pid" 2>/dev/null; do
  if ((SECONDS - start >= timeout)); then
    log "the guest did not finish within $timeout s: killing qemu (pid $qemu_pid)"
    exit 124
  fi
  sleep 1
done
wait "$qemu_pid" || die "qemu failed (exit status $?)"
qemu_pid=

[[ -f $ctl/status ]] || die "the guest powered off without the command's status (console above)"
status=$(<"$ctl/status")
log "the command exited with $status after $((SECONDS - start)) s in the guest"
exit "$status"
