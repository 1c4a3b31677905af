#!/bin/bash
# critest -benchmark (pod and container lifecycle) on a private containerd and on the built-in
# runtime in one run, one runtime after the other on the same machine, then the medians of each
# CRI call and of each whole lifecycle, with the built-in runtime's over containerd's:
#   scripts/critest-bench.sh OUT_DIR [KUBELET_BINARY] [--samples N] [--rounds R]
# KUBELET_BINARY serves the built-in runtime (default $CARGO_TARGET_DIR/release/kubelet, else
# target/release/kubelet). Each round runs containerd, then the built-in runtime; samples of all
# rounds are merged. OUT_DIR gets, per runtime and round, critest's reports and its benchmark data
# (RUNTIME-ROUND/data/*_benchmark_data.json, durations in ns), and summary.json: every sample in
# ms, the medians and the ratios. The table is printed too. Needs what scripts/critest.sh needs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
log() { echo "critest-bench: $*" >&2; }
die() { log "$*"; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }

out='' kubelet='' samples=20 rounds=1
while (($#)); do
  case $1 in
    -h | --help) usage ;;
    --samples) samples=${2:?--samples needs N}; shift 2 ;;
    --rounds) rounds=${2:?--rounds needs R}; shift 2 ;;
    -*) die "unknown option $1" ;;
    *)
      if [[ -z $out ]]; then out=$1; elif [[ -z $kubelet ]]; then kubelet=$1; else usage; fi
      shift
      ;;
  esac
done
[[ -n $out ]] || usage
[[ $samples =~ ^[1-9][0-9]*$ && $rounds =~ ^[1-9][0-9]*$ ]] || die "--samples and --rounds want positive numbers"
((EUID == 0)) || die "must run as root (both runtimes need it)"
command -v jq >/dev/null || die "jq is missing: run scripts/install-deps.sh"
kubelet=${kubelet:-${CARGO_TARGET_DIR:-$repo/target}/release/kubelet}
[[ -x $kubelet ]] || die "$kubelet is not executable: cargo build --release -p kubelet"
mkdir -p "$out"
out=$(cd "$out" && pwd -P)

registry='' rt='' brt=''
cleanup() {
  local status=0
  [[ -z $rt ]] || bash "$here/containerd-down.sh" "$rt" || status=1
  [[ -z $brt ]] || bash "$here/runtime-down.sh" "$brt" || status=1
  [[ -z $registry ]] || bash "$here/critest.sh" registry-down "$registry" || status=1
  return "$status"
}
trap 'status=$?; cleanup || status=1; exit "$status"' EXIT

registry=$(mktemp -d /tmp/kcb.XXXXXX)
eval "$(bash "$here/critest.sh" registry-up "$registry")"

# Flat lowerCamelCase keys: critest ignores anything else and falls back to one sample. The
# timeouts are long because critest's result collector panics when no sample came for that long,
# even after the last one, while later specs still run.
params=$out/params.yaml
cat >"$params" <<EOF
containersNumber: $samples
containersNumberParallel: 1
containerBenchmarkTimeoutSeconds: 500
podsNumber: $samples
podsNumberParallel: 1
podBenchmarkTimeoutSeconds: 500
EOF

bench() { # <endpoint> <dir>
  # critest does not create the output dir, and only logs a failed write.
  mkdir -p "$2/data"
  bash "$here/critest.sh" run "$registry" "$1" --out "$2" -- -benchmark \
    -benchmarking-params-file "$params" -benchmarking-output-dir "$2/data" \
    "--ginkgo.focus=benchmark about (lifecycle of PodSandbox|basic operations on Container)"
  for file in pod container; do
    [[ -s $2/data/${file}_benchmark_data.json ]] || die "critest wrote no $2/data/${file}_benchmark_data.json: see $2/critest.log"
  done
}

for ((round = 0; round < rounds; round++)); do
  rt=$(mktemp -d /tmp/kcc.XXXXXX)
  # Bridges and subnets of its own: it runs beside the tests' and kubelet-bench's runtimes.
  eval "$(KUBELET_TEST_BRIDGE=kcbench0 KUBELET_TEST_SUBNET=10.81.0.0/16 \
    KUBELET_TEST_REGISTRY_CONFIG=$CRITEST_REGISTRY_CONFIG bash "$here/containerd-up.sh" "$rt")"
  bench "$KUBELET_TEST_CRI_ENDPOINT" "$out/containerd-$round"
  bash "$here/containerd-down.sh" "$rt"
  rt=

  brt=$(mktemp -d /tmp/kcr.XXXXXX)
  eval "$(KUBELET_TEST_BRIDGE=kcbench1 KUBELET_TEST_SUBNET=10.82.0.0/16 \
    KUBELET_TEST_REGISTRY_CONFIG=$CRITEST_REGISTRY_CONFIG bash "$here/runtime-up.sh" "$brt" "$kubelet")"
  bench "$KUBELET_TEST_CRI_ENDPOINT" "$out/builtin-$round"
  bash "$here/runtime-down.sh" "$brt"
  brt=
done

# Each data file holds the call names and, per sample, each call's duration and the sample's
# start and end (ns); a whole lifecycle is from a sample's start to its end.
summary=$out/summary.json
{
  for kind in containerd builtin; do
    for file in pod container; do
      for dir in "$out/$kind"-*; do
        jq -c --arg runtime "$kind" --arg benchmark "$file" '. as $d
          | {runtime: $runtime, benchmark: $benchmark,
             calls: (([range(0; $d.operationsNames | length) as $i
                       | {key: $d.operationsNames[$i], value: [$d.datapoints[].operationsDurationsNs[$i] / 1e6]}]
                      | from_entries)
                     + {lifecycle: [$d.datapoints[] | (.endTime - .startTime) / 1e6]})}' \
          "$dir/data/${file}_benchmark_data.json"
      done
    done
  done
} | jq -s --arg machine "$(nproc) CPUs, $(free -m | awk '/^Mem:/ {print $2}') MiB, kernel $(uname -r)" \
  --argjson samples "$samples" --argjson rounds "$rounds" '
  def median: sort | if length == 0 then null
    elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  (group_by([.benchmark, .runtime])
   | map({key: "\(.[0].benchmark)/\(.[0].runtime)",
          value: (reduce .[] as $r ({}; reduce ($r.calls | to_entries[]) as $e (.; .[$e.key] += $e.value)))})
   | from_entries) as $raw
  | {machine: $machine, samples_per_round: $samples, rounds: $rounds,
     medians_ms: ($raw | map_values(map_values(median))),
     builtin_over_containerd: (["pod", "container"] | map(. as $b | {key: $b,
       value: ($raw["\($b)/builtin"] | keys | map(. as $call | {key: $call,
         value: (($raw["\($b)/builtin"][$call] | median) / ($raw["\($b)/containerd"][$call] | median))}) | from_entries)})
       | from_entries),
     samples_ms: $raw}' >"$summary"

jq -r '.medians_ms as $m | .builtin_over_containerd | to_entries[] | .key as $b | .value | to_entries[]
  | "\($b) \(.key): containerd \($m["\($b)/containerd"][.key] | . * 10 | round / 10) ms, builtin \($m["\($b)/builtin"][.key] | . * 10 | round / 10) ms, \(.value * 100 | round / 100)x"' "$summary"
echo "raw samples and medians: $summary"
