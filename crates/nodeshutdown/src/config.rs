//! What the shutdown watcher needs from the KubeletConfiguration, plus the two host paths that
//! tests redirect.

use std::path::PathBuf;
use std::time::Duration;

/// Where logind reads drop-ins; upstream writes its override here.
pub const DEFAULT_LOGIND_CONF_DIR: &str = "/etc/systemd/logind.conf.d";
/// The system bus socket when DBUS_SYSTEM_BUS_ADDRESS is unset (the D-Bus specification's default).
pub const DEFAULT_SYSTEM_BUS_ADDRESS: &str = "unix:path=/var/run/dbus/system_bus_socket";

/// Graceful node shutdown settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// shutdownGracePeriod: the whole time the node shutdown is delayed by; 0 turns the feature off.
    pub grace_period: Duration,
    /// shutdownGracePeriodCriticalPods: the part of it reserved for critical pods.
    pub critical_grace_period: Duration,
    /// The system bus address; `None` means DBUS_SYSTEM_BUS_ADDRESS, else the default socket.
    pub bus_address: Option<String>,
    /// The directory of logind drop-ins that raise InhibitDelayMaxSec.
    pub logind_conf_dir: PathBuf,
}

impl ShutdownConfig {
    /// Settings for the real host: the system bus from the environment, logind's own drop-in dir.
    pub fn new(grace_period: Duration, critical_grace_period: Duration) -> Self {
        Self {
            grace_period,
            critical_grace_period,
            bus_address: None,
            logind_conf_dir: PathBuf::from(DEFAULT_LOGIND_CONF_DIR),
        }
    }

    /// The address the watcher connects to, named in every D-Bus error.
    pub fn resolved_bus_address(&self) -> String {
        self.bus_address
            .clone()
            .or_else(|| std::env::var("DBUS_SYSTEM_BUS_ADDRESS").ok())
            .filter(|address| !address.is_empty())
            .unwrap_or_else(|| DEFAULT_SYSTEM_BUS_ADDRESS.to_string())
    }
}
