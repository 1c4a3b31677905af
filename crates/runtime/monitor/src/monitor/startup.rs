//! Everything before the poll loop: signals, subreaper, identity, cgroups, sockets, the log,
//! and the OCI runtime's `create` with its outcome.

use super::Ready;
use super::attach_server::AttachServer;
use super::create::{self, Io};
use super::event_loop::{Monitor, Output, drain_signals, reap};
use super::stdin::Stdin;
use super::write_identity;
use crate::cgroup::{self, OomCounter};
use crate::config::{MonitorConfig, files};
use crate::cri_log::{LineSplitter, LogFile, MAX_LINE, Stream};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long the runtime's `create` may take (CRI-O's default too) before it is killed.
const CREATE_TIMEOUT: Duration = Duration::from_secs(240);

pub(super) fn run(cfg: MonitorConfig, ready: Ready) -> ExitCode {
    let mut cgroups = Vec::new();
    let code = match start(&cfg, &mut cgroups) {
        Ok(mut monitor) => {
            tracing::info!(pid = monitor.container_pid, "container created");
            ready.ok(monitor.container_pid);
            match crate::startup_pages::release() {
                Ok(bytes) => tracing::debug!(advised_kb = bytes / 1024, "start-up pages unmapped"),
                Err(error) => tracing::warn!(%error, "cannot unmap the start-up pages"),
            }
            monitor.run();
            ExitCode::SUCCESS
        }
        Err(message) => {
            if let Err(error) = runtime_state::write_atomic(
                &cfg.state_dir.join(files::CREATE_ERR),
                message.as_bytes(),
            ) {
                tracing::error!(%error, "cannot record the create error");
            }
            ready.fail(&message);
            ExitCode::FAILURE
        }
    };
    for socket in [
        files::ATTACH_SOCKET,
        files::CONTROL_SOCKET,
        files::CONSOLE_SOCKET,
    ] {
        let _ = std::fs::remove_file(socket);
    }
    cgroup::leave(&cgroups);
    code
}

/// Everything up to a created container; Err is the message for the spawner and create.err.
fn start(cfg: &MonitorConfig, cgroups: &mut Vec<cgroup::Joined>) -> Result<Monitor, String> {
    let signals = sigchld_fd().map_err(|e| format!("cannot watch SIGCHLD: {e}"))?;
    // Orphans of the container's processes are reparented to us, not to init or the daemon.
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("cannot become a child subreaper: {e}"))?;
    write_identity(&cfg.state_dir)?;
    *cgroups = cgroup::place(&cfg.container_id, &cfg.cgroup)?;
    let log = LogFile::open(cfg.log_path.clone())
        .map_err(|e| format!("cannot open the container log {:?}: {e}", cfg.log_path))?;
    let attach = bind(files::ATTACH_SOCKET)?;
    let control = bind(files::CONTROL_SOCKET)?;
    let (runtime_pid, mut io) = create::start(cfg)
        .map_err(|e| format!("cannot run {}: {e}", cfg.create.binary.display()))?;
    let mut reaped = HashMap::new();
    let mut master = None;
    let deadline = Instant::now() + CREATE_TIMEOUT;
    let status = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(kill_create(cfg, runtime_pid));
        }
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if let Some(console) = &io.console {
            fds.push(PollFd::new(console.as_fd(), PollFlags::POLLIN));
        }
        let timeout = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        drop(fds);
        if let (None, Some(console)) = (&master, &io.console) {
            master = create::receive_console(console)
                .map_err(|e| format!("cannot receive the console: {e}"))?;
        }
        drain_signals(&signals);
        reap(&mut reaped);
        if let Some(status) = reaped.remove(&runtime_pid) {
            break status;
        }
    };
    if !matches!(status, WaitStatus::Exited(_, 0)) {
        return Err(failure_message(cfg, status, &io));
    }
    if let (None, Some(console)) = (&master, &io.console) {
        master = create::receive_console(console)
            .map_err(|e| format!("cannot receive the console: {e}"))?;
        if master.is_none() {
            return Err("the runtime created a tty container but sent no console".into());
        }
    }
    let _ = std::fs::remove_file(files::CONSOLE_SOCKET);
    let pid_file = cfg.state_dir.join(files::CONTAINER_PID);
    let container_pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| format!("the runtime wrote no pid to {}", pid_file.display()))?;
    let oom = OomCounter::of_process(container_pid).map(|counter| {
        let base = counter.read().unwrap_or(0);
        (counter, base)
    });
    if oom.is_none() {
        tracing::warn!("no memory cgroup found for the container: OOM kills go unnoticed");
    }
    let mut tty = None;
    let mut stdin = io.stdin.take().map(|fd| Stdin::new(fd, false));
    if let Some(master) = master {
        let dup = |what| {
            master
                .try_clone()
                .map_err(|e| format!("cannot dup the {what}: {e}"))
        };
        tty = Some(dup("console")?);
        if cfg.stdin {
            stdin = Some(Stdin::new(dup("console")?, true));
        }
        io.outputs.push((master, Stream::Stdout));
    }
    let mut monitor = Monitor {
        cfg: cfg.clone(),
        signals,
        outputs: io
            .outputs
            .into_iter()
            .map(|(fd, stream)| Output {
                fd,
                splitter: LineSplitter::new(stream, MAX_LINE),
                stream,
                open: true,
            })
            .collect(),
        stdin,
        tty,
        attach: AttachServer::new(attach),
        control,
        log,
        container_pid,
        oom,
        exit: None,
        drain_until: None,
    };
    // The container may have died (killed before start) before we knew its pid.
    if let Some(status) = reaped.remove(&container_pid) {
        monitor.container_exited(status);
    }
    Ok(monitor)
}

/// A hung `create` (a stuck hook, a dead storage mount): kill the runtime and say so. The
/// half-created container is the caller's to delete, as after any failed create.
fn kill_create(cfg: &MonitorConfig, runtime_pid: i32) -> String {
    let pid = Pid::from_raw(runtime_pid);
    // Our own unreaped child: the pid cannot have been reused.
    let _ = kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
    format!(
        "{} create did not finish within {} s and was killed",
        cfg.create.binary.display(),
        CREATE_TIMEOUT.as_secs()
    )
}

fn failure_message(cfg: &MonitorConfig, status: WaitStatus, io: &Io) -> String {
    let mut text: Vec<String> = io
        .capture
        .iter()
        .chain(io.outputs.iter().map(|(fd, _)| fd))
        .map(create::read_available)
        .filter(|t| !t.is_empty())
        .collect();
    if text.is_empty() {
        text.push(format!(
            "{} create ended with {status:?} and no message",
            cfg.create.binary.display()
        ));
    }
    text.join("\n")
}

fn bind(name: &str) -> Result<UnixListener, String> {
    let _ = std::fs::remove_file(name);
    let listener = UnixListener::bind(name).map_err(|e| format!("cannot listen on {name}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {name}: {e}"))?;
    Ok(listener)
}

/// SIGCHLD blocked and read from a signalfd, before any child exists, so no exit is missed.
fn sigchld_fd() -> nix::Result<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}
