//! Facts about the machine the configuration depends on, behind a trait so tests choose them.

use std::path::Path;

/// Exists when systemd is the init system (what sd_booted(3) checks).
pub(crate) const SYSTEMD_MARKER: &str = "/run/systemd/system";

pub(crate) trait Host {
    fn hostname(&self) -> std::io::Result<String>;
    fn systemd_running(&self) -> bool;
}

/// The machine we run on.
pub(crate) struct RealHost;

impl Host for RealHost {
    fn hostname(&self) -> std::io::Result<String> {
        // The kernel's view of this UTS namespace's hostname, like Go's os.Hostname on Linux.
        std::fs::read_to_string("/proc/sys/kernel/hostname")
    }

    fn systemd_running(&self) -> bool {
        Path::new(SYSTEMD_MARKER).is_dir()
    }
}
