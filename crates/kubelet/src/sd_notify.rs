//! systemd's readiness protocol (sd_notify(3)): one datagram of `KEY=VALUE` lines to the unix
//! socket named by `$NOTIFY_SOCKET`, a path or, after `@`, an abstract name. Under
//! `Type=notify` systemd holds units ordered after the kubelet until `READY=1` arrives.

use std::ffi::{OsStr, OsString};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The variable systemd sets for a `Type=notify` service.
pub const NOTIFY_SOCKET_VAR: &str = "NOTIFY_SOCKET";

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{NOTIFY_SOCKET_VAR}={socket:?}: {source}")]
    Send {
        socket: String,
        source: std::io::Error,
    },
}

/// The socket taken from the environment by [`take_socket_from_env`].
static SOCKET: std::sync::OnceLock<Option<OsString>> = std::sync::OnceLock::new();

/// Takes `$NOTIFY_SOCKET` out of the environment and keeps it for [`ready`] and [`stopping`], as
/// sd_notify(3)'s `unset_environment`: the OCI runtime the built-in runtime starts would inherit
/// it otherwise and try to proxy the container's notifications (runc then fails every start).
///
/// # Safety
/// Call it while the process has one thread: it changes the environment.
pub unsafe fn take_socket_from_env() {
    let socket = std::env::var_os(NOTIFY_SOCKET_VAR);
    if socket.is_some() {
        // SAFETY: the caller guarantees no other thread reads or writes the environment.
        unsafe { std::env::remove_var(NOTIFY_SOCKET_VAR) };
    }
    let _ = SOCKET.set(socket);
}

/// Tells systemd the kubelet is up. Without `$NOTIFY_SOCKET` (not started by systemd, or not as
/// `Type=notify`) there is nobody to tell, and nothing is sent.
pub fn ready() {
    notify_env("READY=1\nSTATUS=serving\n");
}

/// Tells systemd the kubelet is stopping, so `systemctl status` says so while it does.
pub fn stopping() {
    notify_env("STOPPING=1\n");
}

fn notify_env(state: &str) {
    let Some(Some(socket)) = SOCKET.get() else {
        return;
    };
    match notify(socket, state) {
        Ok(()) => tracing::debug!(state = state.trim(), "notified systemd"),
        // As upstream's daemon.SdNotify callers: a failed notification is logged, not fatal;
        // systemd's start timeout then reports the unit.
        Err(e) => tracing::warn!("cannot notify systemd: {e}"),
    }
}

/// Sends `state` to the notification socket `socket` (`/path` or `@abstract`).
pub fn notify(socket: &OsStr, state: &str) -> Result<(), NotifyError> {
    let error = |source| NotifyError::Send {
        socket: socket.to_string_lossy().into_owned(),
        source,
    };
    let bytes = socket.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(socket),
    }
    .map_err(error)?;
    let sender = UnixDatagram::unbound().map_err(error)?;
    sender
        .send_to_addr(state.as_bytes(), &addr)
        .map(drop)
        .map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(listener: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn a_path_socket_gets_the_datagram() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        notify(path.as_os_str(), "READY=1\n").unwrap();
        assert_eq!(received(&listener), "READY=1\n");
    }

    #[test]
    fn an_abstract_socket_gets_the_datagram() {
        let name = format!("kubelet-rs-notify-test-{}", std::process::id());
        let listener =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        notify(OsStr::new(&format!("@{name}")), "READY=1\n").unwrap();
        assert_eq!(received(&listener), "READY=1\n");
    }

    #[test]
    fn a_missing_socket_is_an_error_naming_it() {
        let e = notify(OsStr::new("/nonexistent/notify"), "READY=1\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("NOTIFY_SOCKET=\"/nonexistent/notify\": "),
            "{e}"
        );
    }
}
