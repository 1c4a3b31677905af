//! The machine's CPU and memory, as cAdvisor's MachineInfo gives them to the upstream kubelet:
//! the online logical CPUs and MemTotal.

use crate::{HostError, read};
use std::path::PathBuf;

const CPU_ONLINE: &str = "/sys/devices/system/cpu/online";
const MEMINFO: &str = "/proc/meminfo";

/// The number of online logical CPUs.
pub fn online_cpus() -> Result<u64, HostError> {
    count_cpu_list(&read(CPU_ONLINE)?).ok_or(HostError::Parse {
        path: PathBuf::from(CPU_ONLINE),
        reason: "not a CPU list",
    })
}

/// MemTotal, in bytes.
pub fn memory_bytes() -> Result<u64, HostError> {
    mem_total(&read(MEMINFO)?).ok_or(HostError::Parse {
        path: PathBuf::from(MEMINFO),
        reason: "no MemTotal line",
    })
}

/// Counts the CPUs of a kernel CPU list such as "0-3,6,8-9".
pub fn count_cpu_list(list: &str) -> Option<u64> {
    list.trim().split(',').try_fold(0u64, |total, part| {
        let count = match part.split_once('-') {
            Some((first, last)) => last.parse::<u64>().ok()?.checked_sub(first.parse().ok()?)? + 1,
            None => part.parse::<u64>().map(|_| 1).ok()?,
        };
        Some(total + count)
    })
}

/// MemTotal of a /proc/meminfo text, in bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_count_ranges_and_singles() {
        assert_eq!(count_cpu_list("0-3\n"), Some(4));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("0-1,4,6-7"), Some(5));
        assert_eq!(count_cpu_list("x"), None);
        assert_eq!(count_cpu_list("3-1"), None);
    }

    #[test]
    fn mem_total_is_in_bytes() {
        let meminfo = "MemTotal:       16377012 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total(meminfo), Some(16_377_012 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn this_machine_has_cpus_and_memory() {
        assert!(online_cpus().expect("the CPU list is readable") > 0);
        assert!(memory_bytes().expect("meminfo is readable") > 0);
    }
}
