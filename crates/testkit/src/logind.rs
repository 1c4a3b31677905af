//! For tests of node shutdown: a private system-bus-like dbus-daemon and a fake systemd-logind (plus the bit of systemd that
//! reloads it) served in-process with zbus: these machines run neither systemd nor a system bus.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedFd;

pub const LOGIND_PATH: &str = "/org/freedesktop/login1";

/// A dbus-daemon on a unix socket in a temp dir, killed by PID when dropped.
pub struct BusDaemon {
    child: Child,
    pub address: String,
    _dir: tempfile::TempDir,
}

impl BusDaemon {
    /// Panics (fails the test) when dbus-daemon is missing: install Debian's `dbus` package.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for the bus");
        let config = dir.path().join("system.conf");
        std::fs::write(&config, bus_config(&dir.path().join("system_bus_socket")))
            .expect("write the bus config");
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon must be installed (Debian package dbus)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("dbus-daemon stdout"))
            .read_line(&mut line)
            .expect("read the bus address");
        let address = line.trim().to_string();
        assert!(!address.is_empty(), "dbus-daemon printed no address");
        Self {
            child,
            address,
            _dir: dir,
        }
    }
}

impl BusDaemon {
    /// Kills the daemon now, as a bus restart would, dropping every connection.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BusDaemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// System-bus shape (type system, EXTERNAL auth) but everyone may own, send and receive anything.
fn bus_config(socket: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
        socket.display()
    )
}

/// One Inhibit call as the fake logind received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InhibitCall {
    pub what: String,
    pub who: String,
    pub why: String,
    pub mode: String,
}

/// What the fake logind shares with the test.
#[derive(Debug)]
pub struct LogindState {
    pub inhibit_delay_usec: u64,
    pub inhibits: Vec<InhibitCall>,
    pub kill_unit_calls: Vec<(String, String, i32)>,
}

struct FakeLogind {
    state: Arc<Mutex<LogindState>>,
    /// Receives the index of each inhibitor whose fd reached EOF (every holder closed it).
    released: mpsc::UnboundedSender<usize>,
}

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl FakeLogind {
    async fn inhibit(&self, what: &str, who: &str, why: &str, mode: &str) -> OwnedFd {
        let index = {
            let mut state = self.state.lock().unwrap();
            state.inhibits.push(InhibitCall {
                what: what.into(),
                who: who.into(),
                why: why.into(),
                mode: mode.into(),
            });
            state.inhibits.len() - 1
        };
        // Like logind: hand out the write end of a FIFO and watch the read end for EOF.
        let (mut reader, writer) = std::io::pipe().expect("pipe for the inhibitor");
        let released = self.released.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while reader.read(&mut buf).is_ok_and(|n| n > 0) {}
            let _ = released.send(index);
        });
        OwnedFd::from(std::os::fd::OwnedFd::from(writer))
    }

    #[zbus(property, name = "InhibitDelayMaxUSec")]
    fn inhibit_delay_max_usec(&self) -> u64 {
        self.state.lock().unwrap().inhibit_delay_usec
    }

    #[zbus(signal)]
    async fn prepare_for_shutdown(emitter: &SignalEmitter<'_>, start: bool) -> zbus::Result<()>;
}

/// systemd's KillUnit: a SIGHUP to systemd-logind makes the fake reread the drop-in dir, when
/// `applies_drop_in` (false plays a logind that ignores it).
struct FakeSystemd {
    state: Arc<Mutex<LogindState>>,
    conf_dir: PathBuf,
    applies_drop_in: bool,
}

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl FakeSystemd {
    fn kill_unit(&self, name: &str, whom: &str, signal: i32) {
        let mut state = self.state.lock().unwrap();
        state
            .kill_unit_calls
            .push((name.into(), whom.into(), signal));
        if !(self.applies_drop_in && name == "systemd-logind.service" && signal == 1) {
            return;
        }
        let Ok(conf) = std::fs::read_to_string(self.conf_dir.join("99-kubelet.conf")) else {
            return;
        };
        if let Some(secs) = conf
            .lines()
            .find_map(|l| l.strip_prefix("InhibitDelayMaxSec="))
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            state.inhibit_delay_usec = secs * 1_000_000;
        }
    }
}

/// The fake logind and systemd on their own connection to the bus.
pub struct FakeHost {
    conn: zbus::Connection,
    pub state: Arc<Mutex<LogindState>>,
    released: mpsc::UnboundedReceiver<usize>,
}

impl FakeHost {
    pub async fn serve(
        address: &str,
        inhibit_delay: Duration,
        conf_dir: &Path,
        applies_drop_in: bool,
    ) -> Self {
        let state = Arc::new(Mutex::new(LogindState {
            inhibit_delay_usec: u64::try_from(inhibit_delay.as_micros()).unwrap(),
            inhibits: Vec::new(),
            kill_unit_calls: Vec::new(),
        }));
        let (released_tx, released) = mpsc::unbounded_channel();
        let conn = zbus::connection::Builder::address(address)
            .unwrap()
            .name("org.freedesktop.login1")
            .unwrap()
            .name("org.freedesktop.systemd1")
            .unwrap()
            .serve_at(
                LOGIND_PATH,
                FakeLogind {
                    state: state.clone(),
                    released: released_tx,
                },
            )
            .unwrap()
            .serve_at(
                "/org/freedesktop/systemd1",
                FakeSystemd {
                    state: state.clone(),
                    conf_dir: conf_dir.to_path_buf(),
                    applies_drop_in,
                },
            )
            .unwrap()
            .build()
            .await
            .expect("fake logind connects to the private bus");
        Self {
            conn,
            state,
            released,
        }
    }

    pub async fn prepare_for_shutdown(&self, start: bool) {
        let iface = self
            .conn
            .object_server()
            .interface::<_, FakeLogind>(LOGIND_PATH)
            .await
            .unwrap();
        FakeLogind::prepare_for_shutdown(iface.signal_emitter(), start)
            .await
            .unwrap();
    }

    pub fn inhibits(&self) -> Vec<InhibitCall> {
        self.state.lock().unwrap().inhibits.clone()
    }

    /// The index of the next inhibitor whose fd reached EOF; panics after 10 s.
    pub async fn next_release(&mut self) -> usize {
        tokio::time::timeout(Duration::from_secs(10), self.released.recv())
            .await
            .expect("an inhibitor fd reached EOF within 10 s")
            .expect("fake logind alive")
    }

    /// True when no inhibitor fd reached EOF within `wait`.
    pub async fn none_released_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.released.recv())
            .await
            .is_err()
    }
}
