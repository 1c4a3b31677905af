//! The machine a run measured on, recorded with its figures.

use crate::error::{BenchError, Result};
use crate::report::Machine;
use kubelet_cri::RuntimeService;
use kubelet_cri::remote::RemoteRuntime;
use procfs::Current;

pub async fn describe(cri: &RemoteRuntime) -> Result<Machine> {
    let memory = procfs::Meminfo::current().map_err(|source| BenchError::Proc {
        what: "/proc/meminfo".into(),
        source,
    })?;
    let version = cri.version().await.map_err(BenchError::cri("Version"))?;
    Ok(Machine {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_mib: memory.mem_total / (1024 * 1024),
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        runtime: format!("{} {}", version.runtime_name, version.runtime_version),
    })
}
