//! Container management on the node (upstream pkg/kubelet/cm): the cgroup driver, node
//! allocatable, QoS and pod cgroups, and resource admission.

pub mod cgroup_manager;
pub mod cgroups;
pub mod cpumanager;
pub mod machine;
pub mod node_allocatable;
pub mod qos;
pub mod resource_config;
pub mod setup;
pub mod systemd;

pub use setup::{cfs_quota, cgroup_driver, memory_qos, start_pod_cgroups};
