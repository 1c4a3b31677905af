//! The runtime manager (upstream pkg/kubelet/kuberuntime): turns a pod's spec and the runtime's
//! observed state into CRI calls. Pure builders (labels, hash, sandbox and container configs)
//! live beside the stateful pieces (actions, images, the manager itself).

pub mod container_config;
pub mod dns;
pub mod hash;
pub mod labels;
pub mod qos;
pub mod sandbox_config;
