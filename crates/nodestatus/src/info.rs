//! What the kubelet's flags and runtime say about the node it registers.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Taint;

/// The kubelet version reported in nodeInfo.kubeletVersion.
pub const KUBELET_VERSION: &str = "v1.32.0";

/// The node as the kubelet is configured to present it.
#[derive(Debug, Clone)]
pub struct NodeInfoSource {
    pub node_name: String,
    /// The hostname (--hostname-override or the OS hostname, lowercased): the
    /// kubernetes.io/hostname label and the Hostname address.
    pub hostname: String,
    /// --node-ip or detected; the first is the primary InternalIP.
    pub node_ips: Vec<IpAddr>,
    /// --node-labels.
    pub labels: BTreeMap<String, String>,
    /// --register-with-taints.
    pub taints: Vec<Taint>,
    pub kubelet_port: u16,
    /// From CRI Version: `<runtime name>://<runtime version>`, e.g. "containerd://1.6.20".
    pub runtime_version: String,
    pub max_pods: u32,
    /// --kube-reserved plus --system-reserved.
    pub reserved: Reserved,
    /// The hard eviction thresholds that hold back allocatable.
    pub eviction_hard: HardEviction,
    /// enableControllerAttachDetach (default true): the attach/detach annotation.
    pub controller_attach_detach: bool,
}

impl Default for NodeInfoSource {
    /// The kubelet's defaults for what flags set: port 10250, 110 pods, attach/detach by the
    /// controller, the default hard eviction thresholds; names and addresses empty.
    fn default() -> Self {
        NodeInfoSource {
            node_name: String::new(),
            hostname: String::new(),
            node_ips: Vec::new(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            kubelet_port: 10250,
            runtime_version: String::new(),
            max_pods: 110,
            reserved: Reserved::default(),
            eviction_hard: HardEviction::default(),
            controller_attach_detach: true,
        }
    }
}

/// Resources held back from pods (kube-reserved + system-reserved).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reserved {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
}

/// A threshold as an absolute amount or a share of capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Bytes(u64),
    /// A fraction in [0, 1]: 10% is 0.1.
    Percentage(f64),
}

impl Threshold {
    pub fn of(self, capacity: u64) -> u64 {
        match self {
            Threshold::Bytes(bytes) => bytes,
            // Truncation as upstream's int64(float64(capacity) * percentage).
            Threshold::Percentage(share) => (capacity as f64 * share) as u64,
        }
    }
}

/// The hard eviction thresholds that count against allocatable: memory.available for memory
/// and nodefs.available for ephemeral-storage. `None` when the signal has no hard threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HardEviction {
    pub memory_available: Option<Threshold>,
    pub nodefs_available: Option<Threshold>,
}

impl Default for HardEviction {
    /// Upstream's defaults: memory.available<100Mi, nodefs.available<10%.
    fn default() -> Self {
        HardEviction {
            memory_available: Some(Threshold::Bytes(100 * 1024 * 1024)),
            nodefs_available: Some(Threshold::Percentage(0.1)),
        }
    }
}

/// What the eviction manager and the runtime say about the node's health right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PressureInputs {
    pub memory_pressure: bool,
    pub disk_pressure: bool,
    pub pid_pressure: bool,
    /// Why the node is not ready (runtime down, network not ready, ...); empty when ready.
    pub not_ready_reasons: Vec<String>,
}
