#!/bin/bash
# Install what building and testing kubelet-rs needs on a fresh Debian 12 (bookworm), as root.
# Reruns are fast: apt is only asked when a package is missing. Installing starts no service
# (no systemd as PID 1, and policy-rc.d refuses), see /work/shared/RUNTIME-NOTES.md.
set -euo pipefail

packages=(
  containerd runc containernetworking-plugins # the runtime the integration tests drive
  busybox-static catatonit                      # the two offline test images
  jq                                            # scripts/build-images.sh writes OCI JSON
  protobuf-compiler                             # the k8s-cri crate's build runs protoc
  docker-registry skopeo                        # a loopback registry for real pulls
  gcc libc6-dev                                 # static C stand-ins in the critest images
  crun                                          # the second OCI runtime handler of the built-in runtime
  iproute2 kmod ca-certificates
  dbus                                          # dbus-daemon: the private bus of the fake logind
  etcd-server                                   # with ../shared/tools' kube-apiserver: the real control plane of cluster tests
  dpkg-dev binutils systemd                     # scripts/build-deb.sh and check-deb.sh: dpkg-shlibdeps, strip, systemd-analyze
)

# Downloaded, not installed (it conflicts with busybox-static): Debian's dynamic busybox, whose
# ash runs commands from PATH. busybox-static's ash runs applets in-process, so critest's
# MaskedPaths spec (a masked /bin/ls must fail to run) needs this one as the image's /bin/sh.
# scripts/build-critest-images.sh takes it from here.
deb_dir=/var/cache/kubelet-rs/debs
fetch_debs() {
  compgen -G "$deb_dir/busybox_*.deb" >/dev/null && return 0
  if ((EUID != 0)); then
    echo "install-deps: run as root to download the busybox package into $deb_dir" >&2
    return 1
  fi
  echo "install-deps: downloading the busybox package into $deb_dir"
  mkdir -p "$deb_dir"
  # apt's download user (_apt) cannot write there: download as root into a temp dir.
  local tmp
  tmp=$(mktemp -d)
  # Stale or empty package lists (a machine that had everything installed) need one update.
  (cd "$tmp" && { apt-get download -q busybox 2>/dev/null || { apt-get update -q && apt-get download -q busybox; }; } 2>&1 \
    | grep -v 'Download is performed unsandboxed') || true
  compgen -G "$tmp/busybox_*.deb" >/dev/null || { rm -rf "$tmp"; echo "install-deps: apt-get download busybox failed" >&2; return 1; }
  mv "$tmp"/busybox_*.deb "$deb_dir/"
  rm -rf "$tmp"
}

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages are installed"
  fetch_debs
  exit 0
fi

if ((EUID != 0)); then
  echo "install-deps: run as root to install: ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q "${missing[@]}"
fetch_debs
