#!/bin/bash
# Build the KVM test guest once and print its cache directory (the only line on stdout).
#
#   sudo bash scripts/vm/image.sh        # -> /var/cache/kubelet-rs/vm/<hash>
#
# The guest is Debian 12 (bookworm), built with debootstrap from the package registry: systemd as
# PID 1, dbus, containerd, runc, crun, the CNI plugins, iproute2, iptables, busybox-static,
# catatonit and jq (scripts/build-images.sh runs in the guest), ca-certificates and the kernel,
# so the guest needs no network. The cache directory holds:
#   disk.img      raw ext4 root file system (4 GiB, sparse: about 0.8 GiB on disk), made with
#                 mkfs.ext4 -d, no loop mount; run.sh boots it in snapshot mode, so it stays as built
#   vmlinuz, initrd.img   the guest's kernel and initramfs, taken out of the root file system
#   packages.txt  the guest's package versions
# <hash> covers this script (the package list, the guest's units, the mirror), so editing it
# builds a new image; a successful build removes the images of older inputs. A cold build takes
# a few minutes (debootstrap downloads about 250 packages), a warm call only hashes this file.
#
# Environment: KRT_VM_CACHE (default /var/cache/kubelet-rs/vm), KRT_VM_MIRROR (default
# http://deb.debian.org/debian). Needs root, debootstrap and e2fsprogs (installed with apt-get
# when missing).
set -euo pipefail

cache=${KRT_VM_CACHE:-/var/cache/kubelet-rs/vm}
mirror=${KRT_VM_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
disk_size=4G
packages=(
  systemd systemd-sysv dbus udev kmod procps # systemd as PID 1, the D-Bus API, module autoload
  linux-image-amd64 initramfs-tools zstd     # the kernel and its initramfs (virtio, ext4, 9p)
  containerd runc crun containernetworking-plugins iproute2 iptables
  busybox-static catatonit jq ca-certificates # offline test images (scripts/build-images.sh)
)

log() { echo "vm-image: $*" >&2; }
die() {
  log "$*"
  exit 1
}

((EUID == 0)) || die "must run as root (debootstrap, chroot, file ownership in the image)"

hash=$({
  cat "${BASH_SOURCE[0]}"
  echo "$mirror"
} | sha256sum | cut -c1-16)
out=$cache/$hash
if [[ -f $out/done ]]; then
  echo "$out"
  exit 0
fi

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 || die "apt-get update failed"
  apt-get install -y -q --no-install-recommends "${need[@]}" >&2 || die "apt-get install ${need[*]} failed"
fi
mkfs.ext4 -V 2>&1 | grep -q . || die "mkfs.ext4 does not run"

mkdir -p "$cache"
# One build at a time on this machine; a second caller waits and then finds the image.
exec 9>"$cache/.lock"
flock 9
if [[ -f $out/done ]]; then
  echo "$out"
  exit 0
fi

work=$(mktemp -d "$cache/.build.XXXXXX")
root=$work/root
cleanup() {
  # Unmount what the chroot steps mounted (deepest first) before removing anything, so that
  # rm never walks into /proc, /sys or /dev of the host.
  local mounts
  mounts=$(findmnt -rn -o TARGET | grep -F "$work/" | sort -r || true)
  [[ -z $mounts ]] || xargs -r -d '\n' umount -l <<<"$mounts" || true
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

start=$SECONDS
log "debootstrap $suite from $mirror into $root (a few minutes)"
include=$(
  IFS=,
  echo "${packages[*]}"
)
if ! debootstrap --variant=minbase --components=main --include="$include" \
  "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 40 "$work/debootstrap.log" >&2
  [[ ! -f $root/debootstrap/debootstrap.log ]] || tail -n 20 "$root/debootstrap/debootstrap.log" >&2
  die "debootstrap failed (log above)"
fi
log "debootstrap done in $((SECONDS - start)) s"

# --- the guest's configuration ---------------------------------------------------------------
echo krt-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 krt-vm\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$root/etc/fstab"
# A fixed machine id: an empty one means "first boot", and systemd-firstboot would then wait
# for answers on the console.
echo "$hash$hash" >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
ln -sf /etc/machine-id "$root/var/lib/dbus/machine-id"
# Nothing to log in to, nothing to fetch: no gettys (they would write over the command's output
# on ttyS0), no timers that want the network.
for unit in serial-getty@ttyS0.service getty@tty1.service systemd-firstboot.service \
  apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

# The entry point of run.sh: mount the host's control share (tag krtctl, see run.sh) and run
# the guest.sh it holds. Whatever happens, the guest powers off afterwards, so the host never
# waits for its timeout when a command is done.
cat >"$root/usr/local/sbin/krt-vm-start" <<'EOF'
#!/bin/sh
mkdir -p /run/krt-vm
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 krtctl /run/krt-vm; then
  echo "krt-vm: cannot mount the control share krtctl (started without scripts/vm/run.sh?)"
  exit 1
fi
exec /bin/bash /run/krt-vm/guest.sh
EOF
chmod 755 "$root/usr/local/sbin/krt-vm-start"
cat >"$root/etc/systemd/system/krt-vm.service" <<'EOF'
[Unit]
Description=kubelet-rs VM: run the host's command (scripts/vm/run.sh)
After=multi-user.target
ConditionKernelCommandLine=krt.run=1

[Service]
# exec, not oneshot: boot must be able to finish while the command runs, or a command that
# waits for it (systemctl is-system-running --wait) would wait for itself.
Type=exec
ExecStart=/usr/local/sbin/krt-vm-start
ExecStopPost=/bin/systemctl poweroff --no-block
StandardInput=null
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/ttyS0
TTYReset=no
TTYVHangup=no
KillMode=process
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/krt-vm.service "$root/etc/systemd/system/multi-user.target.wants/krt-vm.service"

# --- kernel, initramfs, disk -----------------------------------------------------------------
kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)
[[ -n $kernel ]] || die "no kernel in $root/boot: did linux-image-amd64 install?"
initrd=$root/boot/initrd.img-${kernel##*/vmlinuz-}
[[ -f $initrd ]] || die "no initramfs $initrd: did initramfs-tools run in the chroot?"
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
# shellcheck disable=SC2016 # dpkg-query's own ${field} syntax
chroot "$root" dpkg-query -W -f='${Package} ${Version}\n' >"$work/packages.txt"

# What the guest never needs: downloaded packages, package lists, docs.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/debootstrap
log "writing the $disk_size ext4 image"
truncate -s "$disk_size" "$work/disk.img"
mkfs.ext4 -q -F -L krt-root -E root_owner=0:0 -d "$root" "$work/disk.img" >&2 || die "mkfs.ext4 -d failed"
rm -rf --one-file-system "$root"

touch "$work/done"
rm -rf --one-file-system "$out" # a build cut off before it finished
mv -T "$work" "$out"
trap - EXIT
# Images of older inputs are never used again.
for old in "$cache"/*; do
  [[ $old == "$out" || ! -f $old/done ]] || rm -rf --one-file-system "$old"
done
log "built $out in $((SECONDS - start)) s ($(du -sh "$out" | cut -f1) on disk)"
echo "$out"
