//! The machine a run measured on, recorded with its figures.

use crate::error::{BenchError, Result};
use crate::report::Machine;
use crate::runner::RuntimeUnderTest;
use kubelet_cri::RuntimeService;
use procfs::Current;

pub async fn describe(runtimes: &[RuntimeUnderTest]) -> Result<Machine> {
    let memory = procfs::Meminfo::current().map_err(|source| BenchError::Proc {
        what: "/proc/meminfo".into(),
        source,
    })?;
    let mut versions = Vec::with_capacity(runtimes.len());
    for runtime in runtimes {
        let version = runtime
            .cri
            .version()
            .await
            .map_err(BenchError::cri("Version"))?;
        versions.push(format!(
            "{}: {} {}",
            runtime.name, version.runtime_name, version.runtime_version
        ));
    }
    Ok(Machine {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_mib: memory.mem_total / (1024 * 1024),
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        runtimes: versions,
    })
}
