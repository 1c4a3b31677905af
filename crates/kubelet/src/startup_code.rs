//! The binary's code and read-only data that only start-up used, given back once the kubelet
//! runs. The kernel keeps every page of the binary a process ever touched resident until memory
//! runs short, and start-up (flags, config, TLS, cgroups, the runtime handshake) touches about as
//! much code as everything after it. MADV_PAGEOUT on the binary's read-only mappings drops those
//! clean pages now; whatever the running kubelet still uses comes back on its first touch.

use std::ffi::c_void;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ReleaseError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: &'static str,
        source: std::io::Error,
    },
    #[error("madvise(MADV_PAGEOUT) of {len} bytes at {start:#x}: {source}")]
    Advise {
        start: usize,
        len: usize,
        source: nix::Error,
    },
}

/// What one release did: bytes of the binary advised, and the process's resident memory around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    pub advised: usize,
    pub resident_before: u64,
    pub resident_after: u64,
}

/// A read-only mapping of the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapping {
    start: usize,
    len: usize,
}

/// Pages out the clean, read-only pages of this process's own binary.
pub fn release() -> Result<Released, ReleaseError> {
    let exe = read_link("/proc/self/exe")?;
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|source| ReleaseError::Read {
        path: "/proc/self/maps",
        source,
    })?;
    let resident_before = resident_bytes()?;
    let mut advised = 0;
    for m in binary_mappings(&maps, &exe) {
        // SAFETY: advice only; a paged-out page of a read-only file mapping reads back unchanged
        // on its next touch, so no memory this process uses changes meaning.
        let rc =
            unsafe { nix::libc::madvise(m.start as *mut c_void, m.len, nix::libc::MADV_PAGEOUT) };
        if rc != 0 {
            return Err(ReleaseError::Advise {
                start: m.start,
                len: m.len,
                source: nix::Error::last(),
            });
        }
        advised += m.len;
    }
    Ok(Released {
        advised,
        resident_before,
        resident_after: resident_bytes()?,
    })
}

/// Releases start-up's pages and says what that gave back; a kernel without MADV_PAGEOUT (before
/// 5.4) only costs the kubelet those pages.
pub fn release_and_log() {
    match release() {
        Ok(r) => tracing::info!(
            advised_kb = r.advised / 1024,
            resident_before_kb = r.resident_before / 1024,
            resident_after_kb = r.resident_after / 1024,
            "released the start-up code's pages"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot release the start-up code's pages"),
    }
}

fn read_link(path: &'static str) -> Result<String, ReleaseError> {
    std::fs::read_link(path)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|source| ReleaseError::Read { path, source })
}

/// Resident memory, VmRSS of /proc/self/status.
fn resident_bytes() -> Result<u64, ReleaseError> {
    let path = "/proc/self/status";
    let status =
        std::fs::read_to_string(path).map_err(|source| ReleaseError::Read { path, source })?;
    let kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    Ok(kb * 1024)
}

/// The mappings of `exe` in /proc/PID/maps text that are readable and not writable: its code, its
/// constants and its relocated-then-sealed tables, never its data.
fn binary_mappings(maps: &str, exe: &str) -> Vec<Mapping> {
    maps.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (range, perms) = (fields.first()?, fields.get(1)?);
            // The path is the sixth field on; a replaced binary's ends in " (deleted)", as the
            // /proc/self/exe link does.
            if fields.get(5..)?.join(" ") != exe || !perms.starts_with('r') || perms.contains('w') {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            Some(Mapping {
                start,
                len: end.checked_sub(start)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
5584e0000000-5584e0a00000 r--p 00000000 fd:01 123 /usr/bin/kubelet
5584e0a00000-5584e2900000 r-xp 00a00000 fd:01 123 /usr/bin/kubelet
5584e2900000-5584e2a00000 r--p 02900000 fd:01 123 /usr/bin/kubelet
5584e2a00000-5584e2a10000 rw-p 02a00000 fd:01 123 /usr/bin/kubelet
5584e3000000-5584e3100000 rw-p 00000000 00:00 0                          [heap]
7f2a121a5000-7f2a122fb000 r-xp 00028000 fd:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
7f2a13000000-7f2a13001000 r-xp 00000000 fd:01 789 /usr/bin/kubelet-old
";

    #[test]
    fn only_the_binarys_read_only_mappings() {
        let got = binary_mappings(MAPS, "/usr/bin/kubelet");
        assert_eq!(
            got,
            [
                Mapping {
                    start: 0x5584e0000000,
                    len: 0xa00000
                },
                Mapping {
                    start: 0x5584e0a00000,
                    len: 0x1f00000
                },
                Mapping {
                    start: 0x5584e2900000,
                    len: 0x100000
                },
            ]
        );
    }

    #[test]
    fn a_replaced_binary_is_still_found() {
        let maps = "00400000-00500000 r-xp 00000000 fd:01 123 /usr/bin/kubelet (deleted)\n";
        let got = binary_mappings(maps, "/usr/bin/kubelet (deleted)");
        assert_eq!(
            got,
            [Mapping {
                start: 0x400000,
                len: 0x100000
            }]
        );
        assert!(binary_mappings(maps, "/usr/bin/kubelet").is_empty());
    }

    #[test]
    fn releasing_this_test_binarys_pages_keeps_it_running() {
        let released = release().expect("MADV_PAGEOUT on this binary (Linux 5.4 or later)");
        assert!(released.advised > 0, "{released:?}");
        assert!(released.resident_before > 0, "{released:?}");
        assert!(released.resident_after > 0, "{released:?}");
    }
}
