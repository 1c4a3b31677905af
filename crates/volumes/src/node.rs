//! The node's capacity read from the machine: what a downward API `limits.*` item reads for a
//! container without that limit, until the kubelet sets the node's allocatable amounts.

use crate::projection::ResourceList;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::path::Path;

/// cpu (online CPUs), memory (MemTotal) and ephemeral-storage (the file system holding `root`).
pub(crate) fn machine_capacity(root: &Path) -> ResourceList {
    let mut capacity = ResourceList::new();
    let mut put = |name: &str, value: Option<u64>| {
        if let Some(value) = value {
            capacity.insert(name.to_owned(), Quantity(value.to_string()));
        }
    };
    put("cpu", online_cpus());
    put("memory", mem_total());
    put("ephemeral-storage", storage_size(root));
    capacity
}

fn online_cpus() -> Option<u64> {
    let listed = std::fs::read_to_string("/sys/devices/system/cpu/online").ok();
    listed.as_deref().and_then(count_cpu_list).or_else(|| {
        std::thread::available_parallelism()
            .ok()
            .map(|n| n.get() as u64)
    })
}

/// "0-3,8,10-11" -> 7.
fn count_cpu_list(list: &str) -> Option<u64> {
    list.trim().split(',').try_fold(0u64, |total, part| {
        let count = match part.split_once('-') {
            Some((a, b)) => b.parse::<u64>().ok()?.checked_sub(a.parse().ok()?)? + 1,
            None => part.parse::<u64>().map(|_| 1).ok()?,
        };
        Some(total + count)
    })
}

fn mem_total() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The size of the file system holding `path` or, before it exists, its nearest ancestor.
fn storage_size(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let stat = nix::sys::statvfs::statvfs(existing).ok()?;
    Some(stat.blocks() * stat.fragment_size())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpu_list("0\n"), Some(1));
        assert_eq!(count_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(count_cpu_list("x"), None);
    }

    #[test]
    fn this_machine_has_every_figure() {
        let capacity = machine_capacity(Path::new("/tmp/does/not/exist"));
        for name in ["cpu", "memory", "ephemeral-storage"] {
            let value: u64 = capacity[name].0.parse().unwrap();
            assert!(value > 0, "{name}");
        }
    }
}
