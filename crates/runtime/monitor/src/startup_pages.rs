//! Unmapping the binary's pages that only the monitor's start-up touched.
//!
//! The monitor is the kubelet binary: loading it, reading the config, joining cgroups and running
//! the OCI runtime's `create` fault in a few MB of its code and constants, which stay in the
//! monitor's resident set for the container's whole life although the poll loop afterwards uses
//! a small part of them. Once the container is created the monitor drops its mappings of the
//! binary's never-written pages (MADV_DONTNEED); what the loop still runs comes back on its first
//! touch. The pages stay in the page cache, shared with the daemon and every other monitor, so
//! this shrinks each monitor's own footprint (RSS, PSS) rather than the machine's.
//!
//! MADV_PAGEOUT would not do: it skips pages that other processes map, and every monitor maps the
//! same binary.

use std::ffi::c_void;
use std::io;

/// A mapping of the binary that holds no private (written) page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Clean {
    start: usize,
    len: usize,
}

/// Drops this process's mappings of its binary's clean read-only pages; returns the bytes of
/// mappings advised.
pub(crate) fn release() -> io::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut advised = 0;
    for mapping in clean_mappings(&smaps, &exe.to_string_lossy()) {
        // SAFETY: the range is a read-only private file mapping with no anonymous page, so
        // every page reads back from the file unchanged after MADV_DONTNEED: no memory this
        // process uses changes. The monitor is single-threaded: nothing writes it meanwhile.
        let rc = unsafe {
            nix::libc::madvise(
                mapping.start as *mut c_void,
                mapping.len,
                nix::libc::MADV_DONTNEED,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        advised += mapping.len;
    }
    Ok(advised)
}

/// The mappings of `exe` in /proc/PID/smaps text that are readable, not writable and hold no
/// anonymous page. A position-independent binary's relocated tables (RELRO) are read-only too
/// but hold written copies, which MADV_DONTNEED would throw away: the Anonymous count excludes
/// them.
fn clean_mappings(smaps: &str, exe: &str) -> Vec<Clean> {
    let mut clean = Vec::new();
    let mut current: Option<Clean> = None;
    for line in smaps.lines() {
        if let Some(rest) = line.strip_prefix("Anonymous:") {
            let anonymous = rest.trim().trim_end_matches("kB").trim();
            if let Some(mapping) = current.take()
                && anonymous == "0"
            {
                clean.push(mapping);
            }
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some((start, end)) = fields.first().and_then(|range| range.split_once('-')) else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // A header line: the path is the sixth field on (a replaced binary's ends in
        // " (deleted)", as the /proc/self/exe link does).
        let perms = fields.get(1).copied().unwrap_or_default();
        let path = fields.get(5..).map(|p| p.join(" ")).unwrap_or_default();
        current = (path == exe && perms.starts_with('r') && !perms.contains('w') && end > start)
            .then_some(Clean {
                start,
                len: end - start,
            });
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(header: &str, anonymous_kb: u32) -> String {
        format!(
            "{header}\nSize:               4096 kB\nRss:                 100 kB\nAnonymous:        {anonymous_kb} kB\nVmFlags: rd mr mw me\n"
        )
    }

    #[test]
    fn only_unwritten_read_only_mappings_of_the_binary() {
        let smaps = [
            mapping(
                "55d600cd7000-55d6016a0000 r--p 00000000 fe:00 10 /usr/bin/kubelet",
                0,
            ),
            mapping(
                "55d6016a0000-55d60356a000 r-xp 009c8000 fe:00 10 /usr/bin/kubelet",
                0,
            ),
            // RELRO: read-only now, but relocated, so written.
            mapping(
                "55d60356a000-55d60367d000 r--p 02891000 fe:00 10 /usr/bin/kubelet",
                1100,
            ),
            mapping(
                "55d60367d000-55d603685000 rw-p 029a3000 fe:00 10 /usr/bin/kubelet",
                0,
            ),
            mapping(
                "7f4dac478000-7f4dac5ce000 r-xp 00026000 fe:00 20 /usr/lib/libc.so.6",
                0,
            ),
            mapping(
                "7ffca2ac8000-7ffca2ae9000 rw-p 00000000 00:00 0   [stack]",
                100,
            ),
        ]
        .concat();
        assert_eq!(
            clean_mappings(&smaps, "/usr/bin/kubelet"),
            [
                Clean {
                    start: 0x55d600cd7000,
                    len: 0x9c9000
                },
                Clean {
                    start: 0x55d6016a0000,
                    len: 0x1eca000
                },
            ]
        );
    }

    #[test]
    fn a_replaced_binary_is_still_found() {
        let smaps = mapping(
            "00400000-00500000 r-xp 00000000 fe:00 10 /usr/bin/kubelet (deleted)",
            0,
        );
        assert_eq!(
            clean_mappings(&smaps, "/usr/bin/kubelet (deleted)"),
            [Clean {
                start: 0x400000,
                len: 0x100000
            }]
        );
        assert!(clean_mappings(&smaps, "/usr/bin/kubelet").is_empty());
    }

    #[test]
    fn releasing_keeps_this_process_running() {
        let before = resident_file_kb();
        let advised = release().expect("MADV_DONTNEED on this test binary");
        assert!(advised > 0, "no clean mapping of the test binary found");
        assert!(
            resident_file_kb() < before,
            "file-backed resident memory did not shrink: {before} kB before"
        );
    }

    fn resident_file_kb() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|line| line.strip_prefix("RssFile:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("RssFile in /proc/self/status")
    }
}
