#!/bin/bash
# Builds the Debian package of kubelet-rs: /usr/bin/kubelet, kubelet.service (Type=notify),
# /etc/default/kubelet (a conffile) and, as documentation only, kubeadm's 10-kubeadm.conf drop-in.
# It Provides, Conflicts with and Replaces the upstream `kubelet` package, so
# `apt install ./kubelet-rs_*.deb` takes that package's place under kubeadm.
#
#   bash scripts/build-deb.sh [--binary PATH] [--out DIR] [--compression xz|gzip|none]
#
# Without --binary it builds the release binary first (cargo). The package version is the
# workspace's; the binary must report the same one. Prints the .deb's path, the only line on
# stdout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=$HOME/.cargo/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin

log() { echo "build-deb: $*" >&2; }
die() { log "$*"; exit 1; }

binary='' out=$PWD/target/debian compression=xz
while (($#)); do
  case $1 in
    --binary) binary=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --compression) compression=$2; shift 2 ;;
    *) die "unknown argument $1 (see the head of $0)" ;;
  esac
done
for tool in dpkg-deb dpkg-shlibdeps strip; do
  command -v "$tool" >/dev/null || die "$tool is missing (Debian's dpkg-dev and binutils have it)"
done

# The workspace's version: [workspace.package] version in Cargo.toml.
version=$(awk '/^\[/ { section = $0 } section == "[workspace.package]" && $1 == "version" { gsub(/"/, "", $3); print $3 }' Cargo.toml)
[[ -n $version ]] || die "no [workspace.package] version in Cargo.toml"

if [[ -z $binary ]]; then
  target_dir=${CARGO_TARGET_DIR:-$PWD/target}
  log "building the release binary into $target_dir"
  cargo build --release --locked --bin kubelet >&2
  binary=$target_dir/release/kubelet
fi
[[ -x $binary ]] || die "$binary is not an executable"
# "Kubernetes v1.32.0 (kubelet-rs 0.1.0)": what it follows upstream, and what it is.
reported=$("$binary" --version)
kubernetes=$(sed -n 's/^Kubernetes v\([0-9.]*\) (kubelet-rs .*)$/\1/p' <<<"$reported")
[[ -n $kubernetes ]] || die "$binary --version printed \"$reported\", not \"Kubernetes vX.Y.Z (kubelet-rs V)\""
[[ $reported == *"(kubelet-rs $version)" ]] \
  || die "$binary reports \"$reported\" but the workspace is $version: rebuild it"

arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
doc=$root/usr/share/doc/kubelet-rs
install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/systemd/system" "$root/etc/default" \
  "$doc/examples"
# Stripped, as Debian ships binaries; the debug info stays in the build dir.
install -m 0755 "$binary" "$root/usr/bin/kubelet"
strip --strip-unneeded "$root/usr/bin/kubelet"
# Where the upstream package (pkgs.k8s.io) puts its unit, so Replaces takes the same path over
# (a /lib and /usr/lib pair would alias on merged-/usr systems and lose the file).
install -m 0644 packaging/kubelet.service "$root/usr/lib/systemd/system/kubelet.service"
install -m 0644 packaging/default/kubelet "$root/etc/default/kubelet"
install -m 0644 packaging/10-kubeadm.conf "$doc/examples/10-kubeadm.conf"
install -m 0644 README.md "$doc/README.md"
cat >"$doc/copyright" <<END
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: kubelet-rs

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
END

# The libraries the binary links, as dpkg-shlibdeps finds them ("libc6 (>= 2.34), ...").
mkdir -p "$stage/shlibs/debian"
printf 'Source: kubelet-rs\n\nPackage: kubelet-rs\nArchitecture: any\n' >"$stage/shlibs/debian/control"
depends=$(cd "$stage/shlibs" && dpkg-shlibdeps -O -e "$root/usr/bin/kubelet" 2>/dev/null \
  | sed -n 's/^shlibs:Depends=//p')
[[ -n $depends ]] || die "dpkg-shlibdeps found no dependencies of $binary"

echo /etc/default/kubelet >"$root/DEBIAN/conffiles"
cat >"$root/DEBIAN/postinst" <<'END'
#!/bin/sh
set -e
# systemd reads the new or replaced unit; enabling and starting is left to the administrator
# (or kubeadm's instructions: systemctl enable --now kubelet), as with the upstream package.
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
END
cp "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<END
Package: kubelet-rs
Version: $version
Architecture: $arch
Maintainer: kubelet-rs developers <kubelet-rs@localhost>
Installed-Size: $installed_size
Depends: $depends
Recommends: runc, containernetworking-plugins, iptables, iproute2
Suggests: containerd, kubeadm
Provides: kubelet (= $kubernetes)
Conflicts: kubelet
Replaces: kubelet
Section: admin
Priority: optional
Description: Kubernetes node agent (kubelet) in Rust, with a built-in container runtime
 A drop-in for the upstream kubelet v$kubernetes: the same flags, KubeletConfiguration file,
 CRI labels, pod log layout and endpoints, so kubeadm, kubectl and log shippers work
 unchanged. With no --container-runtime-endpoint it runs its own container runtime
 (runc or crun, CNI plugins); with one it drives containerd or CRI-O over CRI.
 .
 It replaces the upstream kubelet package and runs under kubeadm's 10-kubeadm.conf drop-in.
END

mkdir -p "$out"
deb=$out/kubelet-rs_${version}_${arch}.deb
dpkg-deb --root-owner-group -Z"$compression" --build "$root" "$deb" >&2
log "built $deb"
echo "$deb"
