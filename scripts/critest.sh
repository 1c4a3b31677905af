#!/bin/bash
# critest (CRI conformance, cri-tools v1.32) offline against any CRI socket: stand-in images
# (scripts/build-critest-images.sh) served by a private Debian docker-registry on 127.0.0.1.
#
# All in one (the runtime must already read DIR as its containerd-style certs.d dir):
#   scripts/critest.sh ENDPOINT --registry-config DIR [RUN OPTIONS]
# In steps, when the runtime must be started after the registry port is known:
#   eval "$(scripts/critest.sh registry-up STATE_DIR [--registry-config DIR])"
#       starts the registry, pushes the images, writes DIR/HOST/hosts.toml (default
#       STATE_DIR/certs.d) and prints CRITEST_REGISTRY_PORT and CRITEST_REGISTRY_CONFIG
#   ... start the runtime with CRITEST_REGISTRY_CONFIG as its certs.d dir (containerd:
#       [plugins."io.containerd.grpc.v1.cri".registry] config_path; built-in runtime:
#       kubelet runtime --registry-config DIR) ...
#   scripts/critest.sh run STATE_DIR ENDPOINT [RUN OPTIONS]
#   scripts/critest.sh compare BASE_DIR SUBJECT_DIR [--margin N] [--floor N]
#       compares two runs' reports (--out dirs): exits 1 when a spec that passed in BASE_DIR did
#       not pass in SUBJECT_DIR, or when SUBJECT_DIR passed fewer than max(N of --floor, BASE_DIR's
#       count + N of --margin) specs
#   scripts/critest.sh registry-down STATE_DIR
#       kills the registry by pid, removes the hosts.toml files and what registry-up made in
#       STATE_DIR (STATE_DIR itself once empty: a report under it stays)
# `run` first removes the runtime's images under critest's repositories (stale stand-ins would
# be used as they are), runs critest (cap: 10 minutes), prints passed/failed/skipped and each
# failing spec with the first lines of its failure, and exits 1 when fewer than --min-passed
# specs passed or critest wrote no report; failing specs alone do not change the exit status.
# RUN OPTIONS:
#   --min-passed N   exit 1 when fewer than N specs pass (default 0)
#   --out DIR        reports (junit.xml, report.json, critest.log; default STATE_DIR/report, or a
#                    new /tmp/kubelet-rs-critest.* dir when all in one)
#   --prefix         use critest's -registry-prefix 127.0.0.1:PORT instead of mirrors (see below)
#   -- ARGS          passed to critest as they are (e.g. --ginkgo.focus=Image)
#
# Mirrors, by default: hosts.toml makes 127.0.0.1:PORT the server for registry.k8s.io and
# gcr.io, so critest pulls exactly the names it later creates containers from. critest's own
# -registry-prefix rewrites only the pull (and drops the tag): specs that hard-code nginx,
# httpd, nonewprivs or hostnet-nginx, or compare RepoTags with the unprefixed name, then fail
# whatever the runtime does (RUNTIME-DESIGN.md). --prefix keeps that mode for runtimes without
# mirror support; it needs only DIR/127.0.0.1:PORT/hosts.toml.
# Needs: critest and crictl (../shared/tools/get, or $CRITEST / $CRICTL), docker-registry, skopeo,
# gcc, jq (scripts/install-deps.sh). Images are cached in
# ${CRITEST_IMAGE_CACHE:-/var/cache/kubelet-rs/critest-images}/HASH, HASH of the build inputs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cache_root=${CRITEST_IMAGE_CACHE:-/var/cache/kubelet-rs/critest-images}
critest_timeout=600 # seconds: the whole suite, hard cap

log() { echo "critest.sh: $*" >&2; }
die() { log "$*"; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }

# An upstream tool through ../shared/tools/get, unless OVERRIDE ($CRITEST / $CRICTL) names one.
tool() { # <name> [override]
  local override=${2:-} path
  if [[ -n $override ]]; then
    [[ -x $override ]] || die "$1 at $override (from the environment) is not executable"
    echo "$override"
    return
  fi
  local get=$repo/../shared/tools/get
  [[ -x $get ]] || die "$1 is missing: no $get (set ${1^^}=/path/to/$1)"
  path=$("$get" "$1") || die "$1 is missing: $get $1 failed"
  echo "$path"
}

need_cmds() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null || die "$cmd is missing: run scripts/install-deps.sh"
  done
}

# Builds the images once per set of build inputs; prints the cache dir.
cached_images() {
  local key dir tmp
  key=$(
    cd "$here"
    cat build-critest-images.sh lib/oci-image.sh critest-images/*
    sha256sum /bin/busybox
    gcc --version | head -n 1
    dpkg-query -W -f='${Version}\n' libc6 libc6-dev 2>/dev/null || true
    ls "${KUBELET_RS_DEB_DIR:-/var/cache/kubelet-rs/debs}" 2>/dev/null || true
  )
  key=$(sha256sum <<<"$key" | cut -c1-16)
  dir=$cache_root/$key
  if [[ ! -f $dir/push.list ]]; then
    mkdir -p "$cache_root"
    tmp=$(mktemp -d "$cache_root/.build.XXXXXX")
    "$here/build-critest-images.sh" "$tmp" >&2 || { rm -rf "$tmp"; die "building the images failed"; }
    # Another run may have finished the same build meanwhile: either copy is right.
    chmod 755 "$tmp"
    mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
  fi
  # Builds of other inputs (other branches) stay a month after their last use.
  touch "$dir"
  find "$cache_root" -mindepth 1 -maxdepth 1 -type d -mtime +30 -exec rm -rf {} + 2>/dev/null || true
  echo "$dir"
}

# The registry's pid, only while its command line still names STATE_DIR's config.
registry_pid() { # <state>
  local pid
  [[ -f $1/registry.pid ]] || return 1
  pid=$(cat "$1/registry.pid")
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$1/registry.yml" || return 1 # 2> first: a gone pid is silent
  echo "$pid"
}

# hosts.toml for the registry itself, and for the two upstream registries as its mirrors.
write_hosts() { # <state> <certs dir> <port>
  local host
  for host in "127.0.0.1:$3" registry.k8s.io gcr.io; do
    if [[ -f $2/$host/hosts.toml ]] && ! grep -q 'written by kubelet-rs scripts/critest.sh' "$2/$host/hosts.toml"; then
      die "$2/$host/hosts.toml exists and is not ours: give registry-up a certs.d dir of its own"
    fi
    mkdir -p "$2/$host"
    # The [host] table is not optional for containerd 1.6 ("invalid `host` tree" without it).
    cat >"$2/$host/hosts.toml" <<TOML
# written by kubelet-rs scripts/critest.sh for its private registry
server = "http://127.0.0.1:$3"

[host."http://127.0.0.1:$3"]
  capabilities = ["pull", "resolve"]
TOML
    echo "$2/$host" >>"$1/hosts.written"
  done
}

registry_up() { # <state> [--registry-config DIR]
  local state=$1 certs
  shift
  certs=$state/certs.d
  while (($#)); do
    case $1 in
      --registry-config) certs=${2:?--registry-config needs a DIR}; shift 2 ;;
      *) die "registry-up: unknown option $1" ;;
    esac
  done
  need_cmds docker-registry skopeo gcc jq ss
  mkdir -p "$state" "$certs"
  state=$(cd "$state" && pwd -P)
  certs=$(cd "$certs" && pwd -P)
  ! registry_pid "$state" >/dev/null || die "a registry already runs for $state: registry-down it first"
  local images
  images=$(cached_images)
  # Until the images are pushed and hosts.toml written, a failure takes the registry down too.
  trap 'registry_down "$state"' EXIT

  # A free port: pick one nobody listens on, and retry when another process wins the race.
  # 20000-29999 stays clear of critest's host ports (12000-12003) and the ephemeral range.
  local port pid attempt
  for attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 10000))
    [[ -z $(ss -Htln "sport = :$port") ]] || continue
    rm -rf "$state/registry"
    cat >"$state/registry.yml" <<YAML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $state/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YAML
    : >"$state/registry.log" # exists before the first grep below
    setsid docker-registry serve "$state/registry.yml" </dev/null >>"$state/registry.log" 2>&1 &
    pid=$!
    echo "$pid" >"$state/registry.pid"
    local deadline=$((SECONDS + 10))
    until grep -q "listening on 127.0.0.1:$port" "$state/registry.log"; do
      kill -0 "$pid" 2>/dev/null || break
      ((SECONDS < deadline)) || die "docker-registry (pid $pid) did not listen within 10 s: see $state/registry.log"
      sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
      break
    fi
    log "docker-registry could not use port $port (attempt $attempt): $(tail -n 1 "$state/registry.log")"
    rm -f "$state/registry.pid"
    pid=
  done
  [[ -n ${pid:-} ]] || die "no free port for docker-registry after 5 attempts"
  echo "$port" >"$state/registry.port"
  echo "$images" >"$state/images.dir"

  # --insecure-policy: these are our own unsigned images, whatever the host's policy.json says.
  local archive ref
  while read -r archive ref; do
    skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
      "oci-archive:$images/$archive" "docker://127.0.0.1:$port/$ref" >&2 \
      || die "pushing $ref failed: see $state/registry.log"
  done <"$images/push.list"
  write_hosts "$state" "$certs" "$port"
  trap - EXIT
  log "registry pid $pid on 127.0.0.1:$port with $(wc -l <"$images/push.list") names; hosts.toml in $certs"
  echo "export CRITEST_REGISTRY_PORT=$port"
  echo "export CRITEST_REGISTRY_CONFIG=$certs"
}

registry_down() { # <state>
  local state=$1 pid dir
  [[ -d $state ]] || return 0
  state=$(cd "$state" && pwd -P)
  if pid=$(registry_pid "$state"); then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  if [[ -f $state/hosts.written ]]; then
    while read -r dir; do rm -rf "$dir"; done <"$state/hosts.written"
  fi
  # Only what registry-up made; a report dir the caller chose elsewhere stays.
  rm -rf "$state/registry" "$state/certs.d" "$state"/registry.{yml,log,pid,port} "$state"/{hosts.written,images.yaml,images.dir}
  rmdir "$state" 2>/dev/null || true
}

# Counts and failing specs from ginkgo's JSON report; sets `passed`.
summarize() { # <report.json>
  local counts
  counts=$(jq -r '[.[].SpecReports[]? | select(.LeafNodeType == "It") | .State]
    | "\(map(select(. == "passed")) | length) \(map(select(. == "skipped" or . == "pending")) | length) \(map(select(. != "passed" and . != "skipped" and . != "pending")) | length)"' "$1")
  read -r passed skipped failed <<<"$counts"
  echo "critest: $passed passed, $failed failed, $skipped skipped"
  # A suite stopped by the time cap or a signal reports the specs it never ran as skipped.
  jq -r '.[] | select((.SpecialSuiteFailureReasons // []) | length > 0)
    | "critest: the suite stopped early (\(.SpecialSuiteFailureReasons | join(", "))): unrun specs count as skipped"' "$1"
  jq -r '.[].SpecReports[]? | select(.LeafNodeType == "It")
    | select(.State != "passed" and .State != "skipped" and .State != "pending")
    | "  FAIL [\(.State)] \((.ContainerHierarchyTexts + [.LeafNodeText]) | join(" "))\n       \(.Failure.Message // "" | split("\n") | map(select(test("\\S"))) | .[0:3] | join(" ") | gsub("\\s+"; " ") | .[0:240])"' "$1"
}

run() { # <state> <endpoint> [RUN OPTIONS]
  local state=$1 endpoint=$2 min_passed=0 out='' prefix=0 extra=()
  shift 2
  while (($#)); do
    case $1 in
      --min-passed) min_passed=${2:?--min-passed needs N}; shift 2 ;;
      --out) out=${2:?--out needs a DIR}; shift 2 ;;
      --prefix) prefix=1; shift ;;
      --) shift; extra=("$@"); break ;;
      *) die "run: unknown option $1 (critest arguments go after --)" ;;
    esac
  done
  [[ $min_passed =~ ^[0-9]+$ ]] || die "--min-passed wants a number, not $min_passed"
  [[ -d $state ]] || die "$state does not exist: run registry-up first"
  state=$(cd "$state" && pwd -P)
  if ! registry_pid "$state" >/dev/null || [[ ! -f $state/images.dir ]]; then
    die "no registry runs for $state: run registry-up first"
  fi
  local port critest crictl
  port=$(cat "$state/registry.port")
  critest=$(tool critest "${CRITEST:-}")
  crictl=$(tool crictl "${CRICTL:-}")
  need_cmds jq timeout
  [[ $endpoint == *://* ]] || endpoint=unix://$endpoint
  local answer
  answer=$("$crictl" --runtime-endpoint "$endpoint" --image-endpoint "$endpoint" --timeout 10s version 2>&1) \
    || die "no CRI runtime answers on $endpoint: $(tail -n 1 <<<"$answer")"

  # critest pulls only what the runtime lacks, and checks RepoTags exactly: stand-ins left by an
  # older build of the images, or by a --prefix run (127.0.0.1:PORT/... tags on the same image
  # ids), would change the outcome. Remove every image under critest's repositories so that
  # each spec pulls today's images; an image still in use stays (errors ignored).
  local id
  for id in $("$crictl" --runtime-endpoint "$endpoint" --image-endpoint "$endpoint" images -o json 2>/dev/null \
    | jq -r '.images[] | select(any(.repoTags[]?, .repoDigests[]?;
        test("^(registry\\.k8s\\.io|gcr\\.io|127\\.0\\.0\\.1:[0-9]+)/(e2e-test-images|k8s-staging-cri-tools)/"))) | .id'); do
    "$crictl" --runtime-endpoint "$endpoint" --image-endpoint "$endpoint" rmi "$id" >/dev/null 2>&1 || true
  done

  out=${out:-$state/report}
  mkdir -p "$out"
  out=$(cd "$out" && pwd -P)
  rm -f "$out"/{junit.xml,report.json,critest.log}
  local images_file=$state/images.yaml args=()
  if ((prefix)); then
    # critest turns every pull into 127.0.0.1:PORT/PATH:latest; these two are used as given.
    printf 'defaultTestContainerImage: 127.0.0.1:%s/e2e-test-images/busybox:latest\nwebServerTestImage: 127.0.0.1:%s/e2e-test-images/nginx:latest\n' \
      "$port" "$port" >"$images_file"
    args+=(-registry-prefix "127.0.0.1:$port")
  else
    printf 'defaultTestContainerImage: registry.k8s.io/e2e-test-images/busybox:1.29-2\nwebServerTestImage: registry.k8s.io/e2e-test-images/nginx:1.14-2\n' \
      >"$images_file"
  fi
  # Never -parallel 1 (critest v1.32 aborts on it); -report-dir is ignored, ginkgo's flags work.
  # ginkgo.timeout ends the suite cleanly (reports written) before timeout(1)'s hard cap.
  args+=(-runtime-endpoint "$endpoint" -image-endpoint "$endpoint" -test-images-file "$images_file"
    "--ginkgo.junit-report=$out/junit.xml" "--ginkgo.json-report=$out/report.json"
    "--ginkgo.timeout=$((critest_timeout - 30))s" --ginkgo.no-color)
  log "running critest against $endpoint (log: $out/critest.log, cap ${critest_timeout}s)"
  local start=$SECONDS rc=0
  (cd "$out" && timeout -s INT -k 20 "$critest_timeout" "$critest" "${args[@]}" "${extra[@]}") \
    >"$out/critest.log" 2>&1 || rc=$?
  log "critest exited with $rc after $((SECONDS - start)) s"
  [[ -s $out/report.json ]] || die "critest wrote no report (exit $rc): see $out/critest.log"
  local passed=0 skipped=0 failed=0
  summarize "$out/report.json"
  echo "reports: $out/junit.xml $out/report.json $out/critest.log"
  if ((passed < min_passed)); then
    die "$passed specs passed, fewer than --min-passed $min_passed"
  fi
}

# The full names of the specs in a ginkgo JSON report that ended in STATE (passed, failed...).
specs_in_state() { # <report.json> <state>
  jq -r --arg state "$2" '.[].SpecReports[]? | select(.LeafNodeType == "It" and .State == $state)
    | (.ContainerHierarchyTexts + [.LeafNodeText]) | join(" ")' "$1" | sort -u
}

compare() { # <base report dir> <subject report dir> [--margin N] [--floor N]
  local base=$1 subject=$2 margin=0 floor=0
  shift 2
  while (($#)); do
    case $1 in
      --margin) margin=${2:?--margin needs N}; shift 2 ;;
      --floor) floor=${2:?--floor needs N}; shift 2 ;;
      *) die "compare: unknown option $1" ;;
    esac
  done
  [[ $margin =~ ^[0-9]+$ && $floor =~ ^[0-9]+$ ]] || die "--margin and --floor want numbers"
  local dir
  for dir in "$base" "$subject"; do
    [[ -s $dir/report.json ]] || die "no critest report in $dir (run critest.sh run --out $dir first)"
  done
  need_cmds jq
  local base_passed subject_passed lost need
  base_passed=$(specs_in_state "$base/report.json" passed | wc -l)
  subject_passed=$(specs_in_state "$subject/report.json" passed | wc -l)
  lost=$(comm -23 <(specs_in_state "$base/report.json" passed) <(specs_in_state "$subject/report.json" passed))
  need=$((base_passed + margin > floor ? base_passed + margin : floor))
  echo "critest: $subject_passed passed in $subject, $base_passed in $base; at least $need needed"
  local status=0
  if [[ -n $lost ]]; then
    log "specs that passed in $base but not in $subject:"
    sed 's/^/  /' <<<"$lost" >&2
    status=1
  fi
  if ((subject_passed < need)); then
    log "$subject_passed specs passed in $subject, fewer than max($floor, $base_passed + $margin) = $need"
    status=1
  fi
  return "$status"
}

all_in_one() { # <endpoint> --registry-config DIR [RUN OPTIONS]
  local endpoint=$1 certs='' run_args=()
  shift
  while (($#)); do
    case $1 in
      --registry-config) certs=${2:?--registry-config needs a DIR}; shift 2 ;;
      --) run_args+=("$@"); break ;;
      *) run_args+=("$1"); shift ;;
    esac
  done
  [[ -n $certs ]] || die "--registry-config DIR is needed: the certs.d dir the runtime at $endpoint reads (or use registry-up / run / registry-down)"
  [[ " ${run_args[*]} " == *" --out "* ]] || run_args=(--out "$(mktemp -d /tmp/kubelet-rs-critest.XXXXXX)" "${run_args[@]}")
  state=$(mktemp -d /tmp/kubelet-rs-critest-state.XXXXXX) # global: the EXIT trap needs it
  registry_up "$state" --registry-config "$certs" >/dev/null
  trap 'registry_down "$state"' EXIT
  run "$state" "$endpoint" "${run_args[@]}"
}

(($# >= 1)) || usage
case $1 in
  -h | --help) usage ;;
  registry-up) (($# >= 2)) || usage; shift; registry_up "$@" ;;
  registry-down) (($# == 2)) || usage; registry_down "$2" ;;
  run) (($# >= 3)) || usage; shift; run "$@" ;;
  compare) (($# >= 3)) || usage; shift; compare "$@" ;;
  *) all_in_one "$@" ;;
esac
