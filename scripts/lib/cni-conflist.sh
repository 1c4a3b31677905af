# shellcheck shell=bash
# Shared by scripts/containerd-up.sh and scripts/runtime-up.sh (sourced, not run): the CNI
# network a private test runtime gives its pods.

# write_cni_conflist <conf dir> <bridge> <subnet> <host-local data dir>
# bridge + host-local + portmap; ipMasq stays off so that pods without host ports never touch
# iptables.
write_cni_conflist() {
  local conf_dir=$1 bridge=$2 subnet=$3 ipam_dir=$4
  mkdir -p "$conf_dir" "$ipam_dir"
  cat >"$conf_dir/10-kubelet-rs-test.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "kubelet-rs-test",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$ipam_dir",
        "ranges": [[{ "subnet": "$subnet" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    {
      "type": "portmap",
      "capabilities": { "portMappings": true }
    }
  ]
}
JSON
}
