#!/bin/bash
# Build offline stand-ins for every image critest v1.32 pulls, as reproducible OCI image archives
# (scripts/lib/oci-image.sh), so that the specs test the runtime rather than the images.
# Usage: scripts/build-critest-images.sh OUT_DIR
# Writes OUT_DIR/*.oci.tar and OUT_DIR/push.list, one "ARCHIVE REPOSITORY:TAG" line per name the
# image must be pushed under (repository paths as in registry.k8s.io and gcr.io; critest.sh
# pushes them into its private registry).
#
# What the specs need (cri-tools v1.32 pkg/validate, pkg/framework) and how it is met:
#   e2e-test-images/busybox:1.29-2  Debian's static busybox, one hard link per applet in /bin
#       (MaskedPaths masks /bin/ls; with symlinks the mask would land on /bin/busybox and /bin/sh),
#       /bin/sh from Debian's dynamic busybox (downloaded by install-deps.sh, see below),
#       busybox's usual users (nobody for RunAsUserName), pgrep and ipcs stand-ins (no such applets).
#   e2e-test-images/nginx:1.14-2    web.c as /usr/sbin/nginx: busybox httpd on :80, titled
#       "nginx: master process ..." (/proc/1/cmdline), pid in /var/run/nginx.pid (HostPID spec).
#   e2e-test-images/httpd:2.4.39-4  web.c as /usr/local/apache2/bin/httpd on :80 ("httpd" in its log).
#   k8s-staging-cri-tools/hostnet-nginx-amd64  the nginx stand-in on :12003 (host network spec).
#   e2e-test-images/nonewprivs:1.3  nnp.c, setuid root, prints its effective uid.
#   k8s-staging-cri-tools/test-image-user-*    USER 1002, www-data, 1003:1004, www-data:1004.
#   k8s-staging-cri-tools/test-image-predefined-group  uid 1000 in group 50000, USER 1000.
#   k8s-staging-cri-tools/test-image-{latest,tag,digest,1,2,3}  busybox plus a file named after
#       the image (as upstream's image-test Dockerfile), so every one has its own image id;
#       test-image-tags:1/2/3 is one image under three tags.
# Not reproducible offline: test-image-digest is pulled by a fixed upstream manifest digest.
set -euo pipefail
umask 022 # the image layers record file modes

if (($# != 1)); then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
out_dir=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$here/critest-images
die() { echo "build-critest-images: $*" >&2; exit 1; }
[[ -x /bin/busybox ]] || die "/bin/busybox is missing: run scripts/install-deps.sh (busybox-static)"
busybox_deb=$(compgen -G "${KUBELET_RS_DEB_DIR:-/var/cache/kubelet-rs/debs}/busybox_*.deb" | sort | tail -n 1) \
  || die "Debian's busybox package is not downloaded: run scripts/install-deps.sh"
for tool in jq gcc; do
  command -v "$tool" >/dev/null || die "$tool is missing: run scripts/install-deps.sh"
done

mkdir -p "$out_dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=scripts/lib/oci-image.sh
source "$here/lib/oci-image.sh"

# Static C stand-ins. -ffile-prefix-map keeps the build dir out of the binary (reproducible).
cc_static() { # <source> <output>
  gcc -static -O2 -Wall -Wextra -Werror -s -ffile-prefix-map="$src"=. -o "$2" "$1" \
    || die "gcc -static $1 failed (static builds need libc6-dev: run scripts/install-deps.sh)"
}
cc_static "$src/web.c" "$work/web.bin"
cc_static "$src/nnp.c" "$work/nnp.bin"

path_env='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
push_list=$work/push.list
: >"$push_list"

# image <archive name> <config JSON> <layer dir>... -- <repository:tag>...
# Each image is also pushed as REPOSITORY:latest: critest's -registry-prefix drops tags.
image() {
  local name=$1 config=$2 dirs=() refs=() ref
  shift 2
  while (($#)) && [[ $1 != -- ]]; do dirs+=("$1"); shift; done
  shift
  refs=("$@")
  oci_image "${refs[0]}" "$out_dir/$name.oci.tar" "$config" "kubelet-rs build-critest-images.sh" "${dirs[@]}"
  for ref in "${refs[@]}" "${refs[0]%:*}:latest"; do
    echo "$name.oci.tar ${ref#*/}" # drop the registry host: critest.sh serves every path itself
  done | sort -u >>"$push_list"
}

# The base layer every image shares: busybox:1.29's layout (everything in /bin), with its users.
base=$work/base
mkdir -p "$base"/{bin,etc,root,proc,sys,dev,tmp,var/www,var/run,home/default-user}
chmod 1777 "$base/tmp"
install -m 0755 /bin/busybox "$base/bin/busybox"
for applet in $(/bin/busybox --list); do
  [[ $applet == busybox || $applet == sh || $applet == ash ]] || ln "$base/bin/busybox" "$base/bin/$applet"
done
# /bin/sh is Debian's dynamic busybox (with the host's libc): busybox-static's ash runs its
# applets in-process, so `sh -c ls` would ignore a masked /bin/ls; this ash execs from PATH.
dpkg-deb -x "$busybox_deb" "$work/busybox-deb"
install -m 0755 "$work/busybox-deb/bin/busybox" "$base/bin/busybox-sh"
ln "$base/bin/busybox-sh" "$base/bin/sh"
ln "$base/bin/busybox-sh" "$base/bin/ash"
for lib in $(ldd "$base/bin/busybox-sh" | awk '$2 == "=>" { print $3 } $1 ~ /^\// { print $1 }'); do
  install -D -m 0755 "$(readlink -f "$lib")" "$base$lib"
done
install -m 0755 "$src/pgrep" "$src/ipcs" "$base/bin/"
cat >"$base/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
cat >"$base/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
users:x:100:
default-user:x:1000:
group-defined-in-image:x:50000:default-user
nogroup:x:65534:
EOF
echo 'stand-in web server (kubelet-rs critest images)' >"$base/var/www/index.html"
echo 'hosts: files dns' >"$base/etc/nsswitch.conf"

# A layer holding one file, as upstream's `ADD ${TEST} ${TEST}`.
file_layer() { # <name>
  mkdir -p "$work/layer-$1"
  echo "$1" >"$work/layer-$1/$1"
  echo "$work/layer-$1"
}

cfg() { # <jq object merged into the base config>
  jq -cn --arg path "$path_env" "{Env: [\$path], Cmd: [\"sh\"], WorkingDir: \"/\"} * ($1)"
}
gcr=gcr.io/k8s-staging-cri-tools
e2e=registry.k8s.io/e2e-test-images

image busybox "$(cfg '{}')" "$base" -- "$e2e/busybox:1.29-2"

# Web servers: the stand-in binary in its own layer, named as the real server.
web_layer() { # <dir> <install path>
  mkdir -p "$1/$(dirname "$2")"
  install -m 0755 "$work/web.bin" "$1/$2"
  echo "$1"
}
nginx_env='"WEB_TITLE=nginx: master process nginx -g daemon off;", "WEB_PIDFILE=/var/run/nginx.pid"'
image nginx "$(cfg "{Env: [\$path, $nginx_env], Cmd: [\"/usr/sbin/nginx\"], StopSignal: \"SIGQUIT\"}")" \
  "$base" "$(web_layer "$work/nginx" usr/sbin/nginx)" -- "$e2e/nginx:1.14-2"
image hostnet-nginx \
  "$(cfg "{Env: [\$path, $nginx_env, \"WEB_PORT=12003\"], Cmd: [\"/usr/sbin/nginx\"], StopSignal: \"SIGQUIT\"}")" \
  "$base" "$work/nginx" -- "$gcr/hostnet-nginx-amd64:latest"
image httpd "$(cfg '{Cmd: ["/usr/local/apache2/bin/httpd"], WorkingDir: "/usr/local/apache2"}')" \
  "$base" "$(web_layer "$work/httpd" usr/local/apache2/bin/httpd)" -- "$e2e/httpd:2.4.39-4"

mkdir -p "$work/nnp/usr/local/bin"
install -m 4755 "$work/nnp.bin" "$work/nnp/usr/local/bin/nnp" # setuid root: the point of the image
image nonewprivs "$(cfg '{Entrypoint: ["/usr/local/bin/nnp"], Cmd: null}')" "$base" "$work/nnp" \
  -- "$e2e/nonewprivs:1.3"

# Image users: ImageStatus reports uid (numeric USER) or username (named USER).
image test-image-user-uid "$(cfg '{User: "1002"}')" "$base" -- "$gcr/test-image-user-uid:latest"
image test-image-user-username "$(cfg '{User: "www-data"}')" "$base" -- "$gcr/test-image-user-username:latest"
image test-image-user-uid-group "$(cfg '{User: "1003:1004"}')" "$base" -- "$gcr/test-image-user-uid-group:latest"
image test-image-user-username-group "$(cfg '{User: "www-data:1004"}')" "$base" \
  -- "$gcr/test-image-user-username-group:latest"
image test-image-predefined-group "$(cfg '{User: "1000"}')" "$base" -- "$gcr/test-image-predefined-group:latest"

for name in test-image-latest test-image-digest test-image-1 test-image-2 test-image-3; do
  image "$name" "$(cfg '{}')" "$base" "$(file_layer "$name")" -- "$gcr/$name:latest"
done
image test-image-tag "$(cfg '{}')" "$base" "$(file_layer test-image-tag)" \
  -- "$gcr/test-image-tag:test" "$gcr/test-image-tag:all"
image test-image-tags "$(cfg '{}')" "$base" "$(file_layer test-image-tags)" \
  -- "$gcr/test-image-tags:1" "$gcr/test-image-tags:2" "$gcr/test-image-tags:3"

mv "$push_list" "$out_dir/push.list"
echo "build-critest-images: $(wc -l <"$out_dir/push.list") names for $(cut -d' ' -f1 "$out_dir/push.list" | sort -u | wc -l) images in $out_dir"
