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
  crun                                          # the second OCI runtime handler of the built-in runtime
  iproute2 kmod ca-certificates
  dbus                                          # dbus-daemon: the private bus of the fake logind
)

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages are installed"
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
