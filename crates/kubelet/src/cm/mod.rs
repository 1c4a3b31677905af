//! Container management on the node (upstream pkg/kubelet/cm): pod cgroups and resource admission.

pub mod cgroups;
pub mod machine;
