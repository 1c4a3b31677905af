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
    put("cpu", kubelet_host::machine::online_cpus().ok());
    put("memory", kubelet_host::machine::memory_bytes().ok());
    put("ephemeral-storage", storage_size(root));
    capacity
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
    fn this_machine_has_every_figure() {
        let capacity = machine_capacity(Path::new("/tmp/does/not/exist"));
        for name in ["cpu", "memory", "ephemeral-storage"] {
            let value: u64 = capacity[name].0.parse().unwrap();
            assert!(value > 0, "{name}");
        }
    }
}
