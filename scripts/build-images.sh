#!/bin/bash
# Build the two test images offline, from files Debian packages ship, as OCI image archives that
# `ctr images import` accepts:
#   localhost/busybox:1.35  static busybox with one symlink per applet, /etc/passwd, /etc/group
#   localhost/pause:3.10    static catatonit in pause mode (reaps zombies as a pod's PID 1)
# The output is byte-for-byte reproducible (scripts/lib/oci-image.sh), so the image ids are the
# same on every machine. scripts/build-critest-images.sh builds the stand-ins critest asks for.
# Usage: scripts/build-images.sh OUT_DIR
set -euo pipefail
umask 022 # the image layers record file modes

if (($# != 1)); then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
out_dir=$1
for tool in /bin/busybox /usr/bin/catatonit; do
  [[ -x $tool ]] || { echo "build-images: $tool is missing: run scripts/install-deps.sh" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "build-images: jq is missing: run scripts/install-deps.sh" >&2; exit 1; }

mkdir -p "$out_dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shellcheck source=scripts/lib/oci-image.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/oci-image.sh"

# build_image <name:tag> <rootfs dir> <image config JSON (the OCI "config" object)>
build_image() {
  local ref=$1 name=${1%:*} tag=${1##*:}
  oci_image "$ref" "$out_dir/$(basename "$name")-$tag.oci.tar" "$3" "kubelet-rs build-images.sh" "$2"
}

busybox_root=$work/busybox-rootfs
mkdir -p "$busybox_root"/{bin,etc,tmp,root,proc,sys,dev,var/www}
chmod 1777 "$busybox_root/tmp"
install -m 0755 /bin/busybox "$busybox_root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [[ $applet == busybox ]] || ln -s busybox "$busybox_root/bin/$applet"
done
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' \
  >"$busybox_root/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$busybox_root/etc/group"
build_image localhost/busybox:1.35 "$busybox_root" \
  '{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sh"],"WorkingDir":"/"}'

pause_root=$work/pause-rootfs
mkdir -p "$pause_root"
install -m 0755 /usr/bin/catatonit "$pause_root/catatonit"
build_image localhost/pause:3.10 "$pause_root" \
  '{"Entrypoint":["/catatonit","-P"],"User":"65535:65535","StopSignal":"SIGINT","WorkingDir":"/"}'
