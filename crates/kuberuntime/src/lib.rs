//! The runtime manager (upstream pkg/kubelet/kuberuntime): turns a pod's spec and the runtime's
//! observed state into CRI calls. Pure builders (labels, hash, sandbox and container configs)
//! live beside the stateful pieces (actions, images, the manager itself).

pub mod actions;
pub mod backoff;
pub mod container_config;
pub mod container_cpus;
pub mod credentials;
pub mod device_options;
pub mod dns;
pub mod ephemeral;
pub mod events;
pub mod gc;
pub mod go_duration;
pub mod hash;
pub mod hooks;
pub mod images;
pub mod kill;
pub mod labels;
pub mod manager;
pub mod qos;
pub mod runtime_status;
pub mod sandbox_config;
pub mod sync;
pub mod termination_message;
