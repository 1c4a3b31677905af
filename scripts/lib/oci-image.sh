# shellcheck shell=bash disable=SC2154 # `work` is set by the sourcing script
# Shared by scripts/build-images.sh and scripts/build-critest-images.sh (sourced, not run):
# OCI image archives written by hand with GNU tar, gzip, sha256sum and jq. Every output is
# byte-for-byte reproducible (fixed mtimes and owners, sorted entries, gzip -n), so image ids are
# the same on every machine with the same Debian packages.
# The caller sets `work` (a scratch dir it removes) and umask 022 (layers record file modes).

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

# oci_image <name:tag> <archive> <image config JSON (the OCI "config" object)> <created_by>
#           <layer dir>...
# Writes one single-platform (linux/amd64) image, one gzip layer per dir, bottom layer first.
oci_image() {
  local ref=$1 archive=$2 config=$3 created_by=$4
  shift 4
  local tag=${ref##*:}
  local layout
  layout=$(mktemp -d "$work/layout.XXXXXX")
  mkdir -p "$layout/blobs/sha256"

  local layers='[]' diff_ids='[]' history='[]' dir diff_id layer layer_digest layer_size
  for dir in "$@"; do
    repro_tar "$dir" "$work/layer.tar" .
    diff_id=$(digest_of "$work/layer.tar")
    gzip -n -9 "$work/layer.tar"
    layer=$(add_blob "$layout" "$work/layer.tar.gz")
    read -r layer_digest layer_size <<<"$layer"
    layers=$(jq -c --arg d "sha256:$layer_digest" --argjson s "$layer_size" \
      '. + [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $d, size: $s}]' <<<"$layers")
    diff_ids=$(jq -c --arg d "sha256:$diff_id" '. + [$d]' <<<"$diff_ids")
    history=$(jq -c --arg by "$created_by" '. + [{created: "1970-01-01T00:00:00Z", created_by: $by}]' <<<"$history")
  done

  jq -cn --argjson cfg "$config" --argjson diffs "$diff_ids" --argjson hist "$history" '{
      created: "1970-01-01T00:00:00Z", architecture: "amd64", os: "linux", config: $cfg,
      rootfs: {type: "layers", diff_ids: $diffs},
      history: $hist
    }' >"$work/config.json"
  local cfg cfg_digest cfg_size
  cfg=$(add_blob "$layout" "$work/config.json")
  read -r cfg_digest cfg_size <<<"$cfg"

  jq -cn --arg cd "sha256:$cfg_digest" --argjson cs "$cfg_size" --argjson layers "$layers" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
      layers: $layers
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

  tar --sort=name --mtime='@0' --owner=0 --group=0 --numeric-owner \
    -C "$layout" -cf "$archive" oci-layout index.json blobs
  rm -rf "$layout"
  echo "$ref -> $archive (image id sha256:$cfg_digest)"
}
