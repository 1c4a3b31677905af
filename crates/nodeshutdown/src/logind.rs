//! The two D-Bus interfaces the shutdown watcher talks to: logind's Manager (inhibitor locks,
//! InhibitDelayMaxUSec, PrepareForShutdown) and systemd's Manager (KillUnit, to make logind reload
//! its configuration).

use zbus::zvariant::OwnedFd;

/// The inhibitor lock's fields, as upstream takes it (what `systemd-inhibit --list` shows).
pub(crate) const INHIBIT_WHAT: &str = "shutdown";
pub(crate) const INHIBIT_WHO: &str = "kubelet";
pub(crate) const INHIBIT_WHY: &str = "Kubelet needs time to handle node shutdown";
pub(crate) const INHIBIT_MODE: &str = "delay";

/// logind rereads logind.conf and its drop-ins on SIGHUP.
pub(crate) const LOGIND_UNIT: &str = "systemd-logind.service";
pub(crate) const SIGHUP: i32 = 1;

#[zbus::proxy(
    interface = "org.freedesktop.login1.Manager",
    default_service = "org.freedesktop.login1",
    default_path = "/org/freedesktop/login1"
)]
pub(crate) trait LogindManager {
    /// Returns the lock: the inhibitor holds until every copy of this fd is closed.
    fn inhibit(&self, what: &str, who: &str, why: &str, mode: &str) -> zbus::Result<OwnedFd>;

    #[zbus(property, name = "InhibitDelayMaxUSec")]
    fn inhibit_delay_max_usec(&self) -> zbus::Result<u64>;

    /// true: a shutdown is starting (delay locks hold it back); false: it was cancelled.
    #[zbus(signal)]
    fn prepare_for_shutdown(&self, start: bool) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
pub(crate) trait SystemdManager {
    fn kill_unit(&self, name: &str, whom: &str, signal: i32) -> zbus::Result<()>;
}
