#!/bin/bash
# Builds the .deb from BINARY with scripts/build-deb.sh and checks it: its control fields
# (dpkg-deb -I), its contents (dpkg-deb -c), and kubelet.service as systemd itself reads it
# (systemd-analyze verify on the unpacked tree, alone and under kubeadm's drop-in).
#
#   bash scripts/check-deb.sh TARGET_DIR/debug/kubelet
#
# Prints "N passed, N failed" and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

(($# == 1)) || { echo "usage: $0 KUBELET_BINARY" >&2; exit 2; }
binary=$1
for tool in dpkg-deb systemd-analyze; do
  command -v "$tool" >/dev/null || { echo "check-deb: $tool is missing" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
deb=$(bash scripts/build-deb.sh --binary "$binary" --out "$work" --compression none)

passed=0 failed=0
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "check-deb: FAILED: $what" >&2
  fi
}
has_line() { grep -qxF -- "$2" <<<"$1"; }
has_match() { grep -qE -- "$2" <<<"$1"; }
lacks_match() { ! grep -qE -- "$2" <<<"$1"; }
# A whole line of systemd's unit dump, indentation aside. The fields hold literal "\$VAR"s.
# shellcheck disable=SC2001,SC2016
# (grep reads to the end, not -q: an early exit would kill sed with SIGPIPE, failing the pipe)
has_field() { sed 's/^[[:space:]]*//' <<<"$1" | grep -xF -- "$2" >/dev/null; }
lacks_field() { ! has_field "$@"; }

# Control fields.
version=$(awk '/^\[/ { s = $0 } s == "[workspace.package]" && $1 == "version" { gsub(/"/, "", $3); print $3 }' Cargo.toml)
kubernetes=$("$binary" --version | sed -n 's/^Kubernetes v\([0-9.]*\) .*/\1/p')
field() { dpkg-deb -f "$deb" "$1"; }
check "Package is kubelet-rs" [ "$(field Package)" = kubelet-rs ]
check "Version is the workspace's ($version)" [ "$(field Version)" = "$version" ]
check "Architecture is this machine's" [ "$(field Architecture)" = "$(dpkg --print-architecture)" ]
check "Provides kubelet (= $kubernetes)" [ "$(field Provides)" = "kubelet (= $kubernetes)" ]
check "Conflicts: kubelet" [ "$(field Conflicts)" = kubelet ]
check "Replaces: kubelet" [ "$(field Replaces)" = kubelet ]
check "Depends on libc6" has_match "$(field Depends)" '(^|, )libc6 \(>= [0-9.]+\)'
info=$(dpkg-deb -I "$deb")
check "postinst present" has_match "$info" ' postinst +#!/bin/sh'
check "/etc/default/kubelet is a conffile" has_line "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" /etc/default/kubelet

# Contents: path, mode and owner.
contents=$(dpkg-deb -c "$deb" | awk '{ print $1, $2, $6 }')
check "/usr/bin/kubelet, 0755 root" has_line "$contents" "-rwxr-xr-x root/root ./usr/bin/kubelet"
check "kubelet.service in /usr/lib/systemd/system" \
  has_line "$contents" "-rw-r--r-- root/root ./usr/lib/systemd/system/kubelet.service"
check "/etc/default/kubelet" has_line "$contents" "-rw-r--r-- root/root ./etc/default/kubelet"
check "10-kubeadm.conf only as an example" \
  has_line "$contents" "-rw-r--r-- root/root ./usr/share/doc/kubelet-rs/examples/10-kubeadm.conf"
check "no kubelet.service.d drop-in (it belongs to kubeadm)" lacks_match "$contents" 'kubelet\.service\.d'
check "copyright" has_line "$contents" "-rw-r--r-- root/root ./usr/share/doc/kubelet-rs/copyright"

tree=$work/tree
dpkg-deb -x "$deb" "$tree"
check "the packaged binary runs" has_match "$("$tree/usr/bin/kubelet" --version)" "^Kubernetes v$kubernetes \\(kubelet-rs $version\\)$"
for file in usr/lib/systemd/system/kubelet.service:packaging/kubelet.service \
  etc/default/kubelet:packaging/default/kubelet \
  usr/share/doc/kubelet-rs/examples/10-kubeadm.conf:packaging/10-kubeadm.conf; do
  check "/${file%%:*} is ${file#*:}" cmp -s "$tree/${file%%:*}" "${file#*:}"
done

# The unit as systemd parses it: no warning, and the fields that matter. --root reads the
# unpacked package; --recursive-errors=no leaves out the targets it names, which live elsewhere.
unit=/usr/lib/systemd/system/kubelet.service
verify() { SYSTEMD_LOG_LEVEL=debug systemd-analyze verify --man=no --recursive-errors=no --root="$tree" "$unit" 2>&1; }
dump=$(verify) && verified=0 || verified=$?
check "systemd-analyze verify passes" [ "$verified" = 0 ]
check "no unit file warning" lacks_match "$dump" "kubelet\.service:[0-9]+:"
# shellcheck disable=SC2016
for want in "Type: notify" "KillMode: process" "Delegate: yes" "Restart: always" \
  "TimeoutStartSec: infinity" "EnvironmentFile: -/etc/default/kubelet" \
  'Command Line: /usr/bin/kubelet "\$KUBELET_EXTRA_ARGS"'; do
  check "unit: $want" has_field "$dump" "$want"
done

# Under kubeadm's drop-in, where the kubeadm package puts it.
mkdir -p "$tree$unit.d"
cp packaging/10-kubeadm.conf "$tree$unit.d/10-kubeadm.conf"
dump=$(verify) && verified=0 || verified=$?
check "systemd-analyze verify passes with 10-kubeadm.conf" [ "$verified" = 0 ]
check "no drop-in warning" lacks_match "$dump" "10-kubeadm\.conf:[0-9]+:"
# shellcheck disable=SC2016
check "kubeadm's ExecStart replaces ours" has_field "$dump" \
  'Command Line: /usr/bin/kubelet "\$KUBELET_KUBECONFIG_ARGS" "\$KUBELET_CONFIG_ARGS" "\$KUBELET_KUBEADM_ARGS" "\$KUBELET_EXTRA_ARGS"'
# shellcheck disable=SC2016
check "only kubeadm's ExecStart" lacks_field "$dump" 'Command Line: /usr/bin/kubelet "\$KUBELET_EXTRA_ARGS"'
check "kubeadm-flags.env read" has_field "$dump" "EnvironmentFile: -/var/lib/kubelet/kubeadm-flags.env"
check "still Type=notify under kubeadm" has_field "$dump" "Type: notify"

echo "check-deb: $passed passed, $failed failed"
((failed == 0))
