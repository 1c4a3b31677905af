//! The CPU manager (upstream pkg/kubelet/cm/cpumanager): the none and static policies, the
//! topology-aware assignment of exclusive CPUs, and their checkpoint in the root dir.

pub mod assignment;
pub mod cpuset;
pub mod manager;
pub mod options;
pub mod policy;
pub mod state;
pub mod topology;

pub use cpuset::CpuSet;
pub use manager::{CpuManager, CpuManagerError, apply_reserved_cpus};
