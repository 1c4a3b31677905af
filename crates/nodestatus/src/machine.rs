//! What the node's hardware and OS look like (upstream gets this from cAdvisor's MachineInfo).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::NodeStatusError;

/// Facts about this machine that go into the Node's capacity and nodeInfo.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MachineFacts {
    /// Online logical CPUs.
    pub num_cpus: u64,
    /// MemTotal, in bytes.
    pub memory_bytes: u64,
    /// Pre-allocated huge pages: page size in bytes -> total bytes.
    pub hugepages: BTreeMap<u64, u64>,
    /// Size of the filesystem that holds the kubelet root dir (nodefs), in bytes.
    pub ephemeral_storage_bytes: u64,
    pub machine_id: String,
    /// Empty when the DMI product UUID cannot be read (it needs root on most machines).
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
}

const HUGEPAGES_DIR: &str = "/sys/kernel/mm/hugepages";
const MACHINE_ID: &str = "/etc/machine-id";
const PRODUCT_UUID: &str = "/sys/class/dmi/id/product_uuid";
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
const OS_RELEASE_KERNEL: &str = "/proc/sys/kernel/osrelease";
const OS_RELEASE: &str = "/etc/os-release";

impl MachineFacts {
    /// Reads the facts of this host; `root_dir` is the kubelet root dir whose filesystem is nodefs.
    pub fn read(root_dir: &Path) -> Result<Self, NodeStatusError> {
        Ok(MachineFacts {
            num_cpus: kubelet_host::machine::online_cpus()?,
            memory_bytes: kubelet_host::machine::memory_bytes()?,
            hugepages: read_hugepages()?,
            ephemeral_storage_bytes: filesystem_size(root_dir)?,
            machine_id: read(MACHINE_ID)?.trim().to_string(),
            system_uuid: std::fs::read_to_string(PRODUCT_UUID)
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            boot_id: read(BOOT_ID)?.trim().to_string(),
            kernel_version: read(OS_RELEASE_KERNEL)?.trim().to_string(),
            os_image: pretty_name(&std::fs::read_to_string(OS_RELEASE).unwrap_or_default()),
        })
    }
}

fn read(path: &str) -> Result<String, NodeStatusError> {
    std::fs::read_to_string(path).map_err(|source| NodeStatusError::ReadHost {
        path: PathBuf::from(path),
        source,
    })
}

/// Huge pages per size from /sys/kernel/mm/hugepages/hugepages-<size>kB/nr_hugepages.
fn read_hugepages() -> Result<BTreeMap<u64, u64>, NodeStatusError> {
    let mut pages = BTreeMap::new();
    let entries = match std::fs::read_dir(HUGEPAGES_DIR) {
        Ok(entries) => entries,
        // A kernel without huge page support has no such directory, and so no huge pages.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(pages),
        Err(source) => {
            return Err(NodeStatusError::ReadHost {
                path: PathBuf::from(HUGEPAGES_DIR),
                source,
            });
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(size_kib) = name
            .to_str()
            .and_then(|n| n.strip_prefix("hugepages-"))
            .and_then(|n| n.strip_suffix("kB"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let nr_path = entry.path().join("nr_hugepages");
        let nr = std::fs::read_to_string(&nr_path)
            .map_err(|source| NodeStatusError::ReadHost {
                path: nr_path,
                source,
            })?
            .trim()
            .parse::<u64>()
            .unwrap_or(0);
        pages.insert(size_kib * 1024, nr * size_kib * 1024);
    }
    Ok(pages)
}

fn filesystem_size(path: &Path) -> Result<u64, NodeStatusError> {
    let stat = nix::sys::statvfs::statvfs(path).map_err(|source| NodeStatusError::StatFs {
        path: path.to_path_buf(),
        source,
    })?;
    #[allow(clippy::useless_conversion)] // the field widths differ between libc targets
    Ok(u64::from(stat.blocks()) * u64::from(stat.fragment_size()))
}

/// PRETTY_NAME of os-release, or "Linux" as cAdvisor answers when there is none.
fn pretty_name(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|value| {
            value
                .trim()
                .trim_matches('"')
                .trim_matches('\'')
                .to_string()
        })
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| "Linux".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_name_unquotes_and_defaults() {
        let debian = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(pretty_name(debian), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(pretty_name("NAME=x\n"), "Linux");
    }

    #[test]
    fn this_machine_has_capacity() {
        let facts = MachineFacts::read(Path::new("/")).expect("host facts are readable");
        assert!(facts.num_cpus > 0);
        assert!(facts.memory_bytes > 0);
        assert!(facts.ephemeral_storage_bytes > 0);
        assert!(!facts.boot_id.is_empty());
        assert!(!facts.kernel_version.is_empty());
    }
}
