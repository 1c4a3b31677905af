//! What the daemon tells a monitor (state_dir/monitor.json) and the files they share.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Files in a container's state dir. The daemon reads them; only the monitor writes them
/// (runc writes [`CONTAINER_PID`] itself through `--pid-file`).
pub mod files {
    /// The [`MonitorConfig`](super::MonitorConfig), written by `spawn` before the monitor starts.
    pub const CONFIG: &str = "monitor.json";
    /// `PID START_TIME\n` of the monitor, written as soon as it runs (start time from
    /// /proc/PID/stat, so a reused pid is never taken for the monitor).
    pub const MONITOR_PID: &str = "monitor.pid";
    /// The container's init pid, written by the OCI runtime's `create --pid-file`.
    pub const CONTAINER_PID: &str = "container.pid";
    /// The runtime's stderr when `create` failed.
    pub const CREATE_ERR: &str = "create.err";
    /// The container's [`ExitInfo`](crate::ExitInfo) as JSON, written atomically once it exited.
    pub const EXIT: &str = "exit.json";
    /// The monitor's own diagnostics.
    pub const MONITOR_LOG: &str = "monitor.log";
    /// Attach clients: see [`crate::attach`].
    pub const ATTACH_SOCKET: &str = "attach.sock";
    /// Control requests (reopen the log): one line in, one line out.
    pub const CONTROL_SOCKET: &str = "ctl.sock";
    /// Where the OCI runtime sends a tty container's PTY master; gone once received.
    pub const CONSOLE_SOCKET: &str = "console.sock";
}

/// One container's monitor: what to create and where its output and state go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorConfig {
    pub container_id: String,
    /// The OCI bundle (holds config.json).
    pub bundle: PathBuf,
    /// The container's own directory for the files in [`files`]; created by `spawn`.
    pub state_dir: PathBuf,
    pub create: CreateCommand,
    /// The CRI log file; None discards output (attach still sees it).
    pub log_path: Option<PathBuf>,
    pub tty: bool,
    /// Keep a stdin pipe (or the PTY) open for attach clients.
    pub stdin: bool,
    /// Close the container's stdin when the first attach client that wrote to it leaves.
    pub stdin_once: bool,
    /// Where the monitor moves when it starts, away from the daemon's cgroup.
    pub cgroup: MonitorCgroup,
}

/// The monitor's own cgroup, by the runtime's cgroup driver (see `cgroup.rs` and `scope.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorCgroup {
    /// `<parent>/monitor-<container id>` in every hierarchy; `parent` is the pod's cgroupfs path
    /// such as `/kubepods/pod<uid>`, None the hierarchies' root.
    Cgroupfs { parent: Option<String> },
    /// A transient scope `kubelet-rs-monitor-<container id>.scope` that systemd creates in
    /// `slice` (the pod's slice), as CRI-O places conmon.
    SystemdScope { slice: String },
}

/// The OCI runtime invocation. The monitor runs
/// `BINARY --root ROOT GLOBAL_ARGS... create --bundle BUNDLE --pid-file STATE/container.pid
/// [--console-socket SOCKET] ID`, the same CLI for runc and crun.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCommand {
    pub binary: PathBuf,
    pub root: PathBuf,
    /// Global options placed before `create` (for example `--systemd-cgroup`).
    #[serde(default)]
    pub global_args: Vec<String>,
}

impl MonitorConfig {
    pub fn config_path(&self) -> PathBuf {
        self.state_dir.join(files::CONFIG)
    }
}
