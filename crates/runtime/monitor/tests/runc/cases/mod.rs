//! The test cases, and what they share.

mod lifecycle;
mod output;

use crate::fixture::{Fixture, eventually, log_records};
use lifecycle::*;
use output::*;
use runtime_monitor::{ExitInfo, Monitor, MonitorConfig};
use std::path::Path;
use std::time::Duration;

pub use lifecycle::spawner;

type Case = fn(&Fixture) -> Result<(), String>;

pub const ALL: &[(&str, Case)] = &[
    (
        "logs_stdout_stderr_and_exit_code",
        logs_stdout_stderr_and_exit_code,
    ),
    ("exit_by_signal", exit_by_signal),
    ("oom_killed", oom_killed),
    ("reopen_after_rename", reopen_after_rename),
    ("tty", tty),
    ("attach_output_and_stdin_once", attach_output_and_stdin_once),
    (
        "create_failure_returns_runtime_stderr",
        create_failure_returns_runtime_stderr,
    ),
    ("monitor_outlives_its_spawner", monitor_outlives_its_spawner),
    ("spawner_killed_during_create", spawner_killed_during_create),
    ("monitor_killed_is_gone", monitor_killed_is_gone),
    ("output_of_orphans_after_exit", output_of_orphans_after_exit),
];

pub(crate) fn monitor_binary() -> std::path::PathBuf {
    std::env::current_exe().expect("the test binary's path")
}

pub(crate) fn spawn(cfg: &MonitorConfig) -> Result<Monitor, String> {
    runtime_monitor::spawn(&monitor_binary(), cfg).map_err(|e| e.to_string())
}

pub(crate) fn wait(cfg: &MonitorConfig) -> Result<ExitInfo, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(30),
            runtime_monitor::wait_exit(&cfg.state_dir),
        )
        .await
        .map_err(|_| "no exit within 30 s".to_string())?
        .map_err(|e| e.to_string())
    })
}

pub(crate) fn check(condition: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(what()) }
}

pub(crate) fn records(cfg: &MonitorConfig, stream: &str) -> Vec<String> {
    log_records(cfg.log_path.as_deref().unwrap())
        .into_iter()
        .filter(|r| r.starts_with(stream))
        .collect()
}

/// The monitor ends after the container and takes its cgroup with it.
pub(crate) fn monitor_gone(fixture: &Fixture, cfg: &MonitorConfig) -> Result<(), String> {
    eventually("the monitor to exit", || {
        !runtime_monitor::is_alive(&cfg.state_dir)
    })?;
    let dir = Path::new("/sys/fs/cgroup/memory")
        .join(fixture.cgroup_parent.trim_start_matches('/'))
        .join(format!("monitor-{}", cfg.container_id));
    check(!dir.exists(), || {
        format!("{} was left behind", dir.display())
    })
}
