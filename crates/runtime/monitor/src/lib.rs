//! The per-container monitor of the built-in runtime (what containerd's shim and CRI-O's
//! conmon are), and the daemon's side of it.
//!
//! The daemon calls [`spawn`]; the kubelet binary, exec'd as `<binary> monitor --config
//! STATE_DIR/monitor.json --ready-fd N`, hands those arguments to [`main`] before anything else
//! runs. The monitor is single-threaded: it runs the OCI runtime's `create`, holds the
//! container's stdio or PTY, writes the CRI log ([`cri_log`]), serves attach ([`attach`]) and
//! ReopenContainerLog, reaps the container as its subreaper and records its exit in the state
//! dir ([`files`]). It outlives the daemon: its own session and cgroup, not the daemon's child.
//! `monitor exec-reaper` is instead the subreaper of one tty exec session
//! ([`exec_reaper_command`]).

pub mod attach;
mod cgroup;
mod client;
mod config;
pub mod console;
pub mod cri_log;
mod error;
mod exec_reaper;
mod exit;
mod monitor;
mod procfs;
mod scope;
mod sock;
mod startup_pages;

pub use client::{Monitor, is_alive, read_exit, read_monitor, reopen_log, spawn, wait_exit};
pub use config::{CreateCommand, MonitorCgroup, MonitorConfig, files};
pub use error::MonitorError;
pub use exec_reaper::{ReaperReport, exec_reaper_command};
pub use exit::ExitInfo;
pub use monitor::main;
