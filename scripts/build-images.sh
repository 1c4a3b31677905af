#!/bin/bash
# Build the two test images offline, from files Debian packages ship, as OCI image archives that
# `ctr images import` accepts:
#   localhost/busybox:1.35  static busybox with one symlink per applet, /etc/passwd, /etc/group
#   localhost/pause:3.10    static catatonit in pause mode (reaps zombies as a pod's PID 1)
# The output is byte-for-byte reproducible (fixed mtimes and owners, sorted entries, gzip -n),
# so the image ids are the same on every machine.
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

# Reproducible tar of a directory's contents.
repro_tar() { # <dir> <out.tar> <entries...>
  local dir=$1 tarball=$2
  shift 2
  tar --sort=name --mtime='@0' --owner=0 --group=0 --numeric-owner --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$dir" -cf "$tarball" "$@"
}

digest_of() { sha256sum "$1" | cut -d' ' -f1; }

# Moves a file into the layout's blob store; prints "<digest> <size>".
add_blob() { # <layout> <file>
  local layout=$1 file=$2 digest size
  digest=$(digest_of "$file")
  size=$(stat -c %s "$file")
  mv "$file" "$layout/blobs/sha256/$digest"
  echo "$digest $size"
}

# build_image <name:tag> <rootfs dir> <image config JSON (the OCI "config" object)>
build_image() {
  local ref=$1 rootfs=$2 config=$3
  local name=${ref%:*} tag=${ref##*:}
  local layout=$work/layout-$tag
  mkdir -p "$layout/blobs/sha256"

  repro_tar "$rootfs" "$work/layer.tar" .
  local diff_id layer layer_digest layer_size
  diff_id=$(digest_of "$work/layer.tar")
  gzip -n -9 "$work/layer.tar"
  layer=$(add_blob "$layout" "$work/layer.tar.gz")
  read -r layer_digest layer_size <<<"$layer"

  jq -cn --argjson cfg "$config" --arg diff "sha256:$diff_id" '{
      created: "1970-01-01T00:00:00Z", architecture: "amd64", os: "linux", config: $cfg,
      rootfs: {type: "layers", diff_ids: [$diff]},
      history: [{created: "1970-01-01T00:00:00Z", created_by: "kubelet-rs build-images.sh"}]
    }' >"$work/config.json"
  local cfg cfg_digest cfg_size
  cfg=$(add_blob "$layout" "$work/config.json")
  read -r cfg_digest cfg_size <<<"$cfg"

  jq -cn --arg cd "sha256:$cfg_digest" --argjson cs "$cfg_size" \
    --arg ld "sha256:$layer_digest" --argjson ls "$layer_size" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
      layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $ld, size: $ls}]
    }' >"$work/manifest.json"
  local manifest manifest_digest manifest_size
  manifest=$(add_blob "$layout" "$work/manifest.json")
  read -r manifest_digest manifest_size <<<"$manifest"

  # `ctr images import` names the image after io.containerd.image.name; the OCI ref name
  # alone would give just the tag.
  jq -cn --arg md "sha256:$manifest_digest" --argjson ms "$manifest_size" \
    --arg ref "$ref" --arg tag "$tag" '{
      schemaVersion: 2,
      manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $md,
        size: $ms, platform: {architecture: "amd64", os: "linux"},
        annotations: {"io.containerd.image.name": $ref, "org.opencontainers.image.ref.name": $tag}}]
    }' >"$layout/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

  local archive
  archive=$out_dir/$(basename "$name")-$tag.oci.tar
  tar --sort=name --mtime='@0' --owner=0 --group=0 --numeric-owner \
    -C "$layout" -cf "$archive" oci-layout index.json blobs
  echo "$ref -> $archive (image id sha256:$cfg_digest)"
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
