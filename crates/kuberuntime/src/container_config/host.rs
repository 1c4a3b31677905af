//! Facts about the node that upstream's container config reads straight from the host: the
//! cgroup mode, the swap controller and the huge page sizes. Each is read once per process.

use std::path::Path;
use std::sync::OnceLock;

/// cgroup v2 unified mode: /sys/fs/cgroup is the v2 hierarchy itself.
pub(crate) fn is_cgroup2_unified() -> bool {
    static UNIFIED: OnceLock<bool> = OnceLock::new();
    *UNIFIED.get_or_init(|| Path::new("/sys/fs/cgroup/cgroup.controllers").exists())
}

/// Whether swap can be limited: v1 has memsw files, v2 has memory.swap.max in our own cgroup
/// (the root cgroup has none).
pub(crate) fn swap_controller_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if !is_cgroup2_unified() {
            return Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
        }
        let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
            return false;
        };
        own.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .is_some_and(|p| {
                Path::new("/sys/fs/cgroup")
                    .join(p.trim_start_matches('/'))
                    .join("memory.swap.max")
                    .exists()
            })
    })
}

/// The host's huge page sizes as the CRI names them ("2MB", "1GB").
pub(crate) fn hugepage_sizes() -> &'static [String] {
    static SIZES: OnceLock<Vec<String>> = OnceLock::new();
    SIZES.get_or_init(|| {
        let Ok(dir) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
            return Vec::new();
        };
        let mut sizes: Vec<String> = dir
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let kib: i64 = name
                    .strip_prefix("hugepages-")?
                    .strip_suffix("kB")?
                    .parse()
                    .ok()?;
                hugepage_unit_size(kib.checked_mul(1024)?)
            })
            .collect();
        sizes.sort();
        sizes
    })
}

/// `HugePageUnitSizeFromByteSize`: the size in the largest unit that divides it exactly;
/// `None` when it is not a whole number of such units.
pub(crate) fn hugepage_unit_size(mut size: i64) -> Option<String> {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut idx = 0;
    while size != 0 && size % 1024 == 0 && idx < UNITS.len() - 1 {
        size /= 1024;
        idx += 1;
    }
    (size <= 1024).then(|| format!("{size}{}", UNITS[idx]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugepage_units() {
        assert_eq!(hugepage_unit_size(2 << 20).as_deref(), Some("2MB"));
        assert_eq!(hugepage_unit_size(1 << 30).as_deref(), Some("1GB"));
        assert_eq!(hugepage_unit_size(64 << 10).as_deref(), Some("64KB"));
        assert_eq!(hugepage_unit_size(3000), None);
    }
}
