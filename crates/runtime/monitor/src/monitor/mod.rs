//! The monitor process: `<binary> monitor --config STATE_DIR/monitor.json [--ready-fd N]`.
//!
//! It detaches (fork, the first process exits so the spawner reaps it at once), becomes a child
//! subreaper, leaves the daemon's cgroup, runs the OCI runtime's `create` with the container's
//! stdio, reports to the spawner through the ready fd, then runs a single-threaded poll loop:
//! container output to the CRI log and attach clients, attach input to stdin, control requests,
//! SIGCHLD through a signalfd. When the container exits it writes the exit file, drains the
//! output and exits.

mod attach_server;
mod control;
mod create;
mod event_loop;
mod startup;
mod stdin;

pub(crate) use control::REOPEN;

use crate::config::{MonitorConfig, files};
use crate::procfs;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::unistd::{ForkResult, fork};
use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::ExitCode;

/// The monitor's entry. `args` are the arguments after `monitor`: `--config PATH` and, from
/// `spawn`, `--ready-fd N` (its stdout: 1); or `exec-reaper ...` ([`crate::exec_reaper`]).
/// Must run before any other thread exists in the process (it forks).
pub fn main(args: Vec<String>) -> ExitCode {
    if args.first().map(String::as_str) == Some(crate::exec_reaper::SUBCOMMAND) {
        return crate::exec_reaper::main(&args[1..]);
    }
    let (config_path, ready_fd) = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("monitor: {message}");
            return ExitCode::from(2);
        }
    };
    // SAFETY: the caller runs this before any thread is started (the kubelet binary dispatches
    // `monitor` first thing in main), so the child is a copy of a single-threaded process and
    // may allocate freely.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => return ExitCode::SUCCESS,
        Ok(ForkResult::Child) => {}
        Err(error) => {
            eprintln!("monitor: fork: {error}");
            return ExitCode::FAILURE;
        }
    }
    let ready = Ready(ready_fd.map(take_ready_fd));
    // A session of our own, so no signal to the spawner's process group or terminal reaches
    // us; a forked child is never a group leader, so this cannot fail with EPERM.
    if let Err(error) = nix::unistd::setsid() {
        ready.fail(&format!("setsid: {error}"));
        return ExitCode::FAILURE;
    }
    let cfg: MonitorConfig = match std::fs::read(&config_path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(cfg) => cfg,
        Err(error) => {
            ready.fail(&format!("cannot read {}: {error}", config_path.display()));
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = std::env::set_current_dir(&cfg.state_dir) {
        ready.fail(&format!(
            "cannot enter {}: {error}",
            cfg.state_dir.display()
        ));
        return ExitCode::FAILURE;
    }
    init_tracing();
    // Our stderr is /dev/null: a panic goes to monitor.log instead.
    std::panic::set_hook(Box::new(|info| tracing::error!(%info, "monitor panicked")));
    let span = tracing::info_span!("monitor", container_id = %cfg.container_id);
    let _entered = span.enter();
    startup::run(cfg, ready)
}

fn parse_args(args: &[String]) -> Result<(PathBuf, Option<RawFd>), String> {
    let mut config = None;
    let mut ready = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--config" => config = Some(PathBuf::from(value()?)),
            "--ready-fd" => {
                let fd = value()?;
                ready = Some(fd.parse().map_err(|_| format!("bad --ready-fd {fd:?}"))?);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((config.ok_or("--config PATH is required")?, ready))
}

/// The ready pipe as a close-on-exec file, so the runtime and the container never inherit it
/// (the spawner reads it until EOF). The spawner passes it as our stdout: then it moves off
/// fd 1 and /dev/null takes its place, so stdio stays valid.
fn take_ready_fd(fd: RawFd) -> File {
    // SAFETY: the spawner handed us this descriptor for our exclusive use; nothing else in
    // this process refers to it.
    let mut passed = unsafe { OwnedFd::from_raw_fd(fd) };
    if fd > 2 {
        let _ = fcntl(&passed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
        return File::from(passed);
    }
    let moved = fcntl(&passed, FcntlArg::F_DUPFD_CLOEXEC(3));
    match (moved, File::open("/dev/null")) {
        (Ok(moved), Ok(null)) if nix::unistd::dup2(&null, &mut passed).is_ok() => {
            // The stdio descriptor is /dev/null now and must stay open.
            std::mem::forget(passed);
            // SAFETY: F_DUPFD_CLOEXEC returned a fresh descriptor that nothing else owns.
            unsafe { File::from_raw_fd(moved) }
        }
        _ => {
            let _ = fcntl(&passed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
            File::from(passed)
        }
    }
}

/// The monitor's diagnostics go to monitor.log in its state dir (its stdio is /dev/null), in
/// the kubelet's klog format.
fn init_tracing() {
    let Ok(file) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(files::MONITOR_LOG)
    else {
        return;
    };
    let _ = kubelet_logging::init(
        0,
        kubelet_logging::Format::Text,
        std::sync::Mutex::new(file),
        false,
    );
}

/// The spawner's end of the handshake: one message, then the pipe closes.
pub(crate) struct Ready(Option<File>);

/// Prefix of the success message on the ready pipe; anything else is a failure.
pub(crate) const READY: &str = "ready";

impl Ready {
    /// `ready MONITOR_PID CONTAINER_PID`. A spawner killed meanwhile is no error to us.
    fn ok(mut self, container_pid: i32) {
        if let Some(file) = &mut self.0 {
            let _ = writeln!(file, "{READY} {} {container_pid}", std::process::id());
        }
    }

    fn fail(mut self, message: &str) {
        tracing::error!(message, "container not created");
        if let Some(file) = &mut self.0 {
            let _ = write!(file, "failed\n{message}");
        }
    }
}

/// Writes monitor.pid: who we are, robust to pid reuse.
fn write_identity(state_dir: &std::path::Path) -> Result<(), String> {
    let pid = std::process::id() as i32;
    let start = procfs::start_time(pid).ok_or("cannot read our own /proc/PID/stat")?;
    runtime_state::write_atomic(
        &state_dir.join(files::MONITOR_PID),
        procfs::format_identity(pid, start).as_bytes(),
    )
    .map_err(|e| e.to_string())
}
