//! The daemon's side: start a monitor and read what it records.

use crate::config::{MonitorConfig, files};
use crate::error::MonitorError;
use crate::exit::ExitInfo;
use crate::monitor::READY;
use crate::procfs;
use crate::sock;
use nix::fcntl::OFlag;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A created container's monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Monitor {
    pub monitor_pid: i32,
    pub container_pid: i32,
}

/// Starts a monitor for `cfg` (writing state_dir/monitor.json first) and waits until it has
/// created the container (Ok, with the pids) or failed (Err with the runtime's stderr). The
/// monitor runs in its own session and cgroup and is not our child once this returns, so
/// killing this process leaves it and the container running. Blocking.
///
/// After an Err the container may still exist in the OCI runtime (a create that failed half-way
/// or was killed after its timeout): the caller deletes it (`delete --force`), as containerd
/// does. The monitor is reparented to init or the nearest subreaper; the daemon must not be a
/// subreaper itself, or it has to reap its monitors.
pub fn spawn(monitor_binary: &Path, cfg: &MonitorConfig) -> Result<Monitor, MonitorError> {
    let span = tracing::info_span!("spawn_monitor", container_id = %cfg.container_id);
    let _entered = span.enter();
    let config_path = cfg.config_path();
    let write_config = |source| MonitorError::WriteConfig {
        path: config_path.clone(),
        source,
    };
    fs::create_dir_all(&cfg.state_dir).map_err(|source| {
        write_config(runtime_state::StateError::Write {
            path: cfg.state_dir.clone(),
            source,
        })
    })?;
    let json = serde_json::to_vec_pretty(cfg).map_err(|source| {
        write_config(runtime_state::StateError::Encode {
            path: config_path.clone(),
            source,
        })
    })?;
    runtime_state::write_atomic(&config_path, &json).map_err(write_config)?;

    let start_error = |source| MonitorError::Start {
        container_id: cfg.container_id.clone(),
        binary: monitor_binary.to_path_buf(),
        source,
    };
    let (ready_read, ready_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| start_error(e.into()))?;
    // The ready pipe is the monitor's stdout and it starts in a process group of its own (the
    // monitor itself then calls setsid): no pre_exec closure, so std spawns through
    // posix_spawn (vfork) instead of forking this multi-threaded daemon's address space.
    let mut command = Command::new(monitor_binary);
    command
        .arg("monitor")
        .arg("--config")
        .arg(&config_path)
        .arg("--ready-fd")
        .arg("1")
        .stdin(Stdio::null())
        .stdout(ready_write)
        .stderr(Stdio::null())
        .process_group(0);
    let spawned = command.spawn();
    // The command holds our copy of the write end: drop it, or the pipe never reaches EOF.
    drop(command);
    let mut first = spawned.map_err(start_error)?;
    let status = first.wait();
    let mut message = String::new();
    fs::File::from(ready_read)
        .read_to_string(&mut message)
        .map_err(start_error)?;
    if let Some(pids) = message.strip_prefix(READY) {
        let mut pids = pids.split_whitespace().map(str::parse::<i32>);
        if let (Some(Ok(monitor_pid)), Some(Ok(container_pid))) = (pids.next(), pids.next()) {
            tracing::debug!(monitor_pid, container_pid, "container created");
            return Ok(Monitor {
                monitor_pid,
                container_pid,
            });
        }
    }
    match message.strip_prefix("failed\n") {
        Some(text) => Err(MonitorError::Create {
            container_id: cfg.container_id.clone(),
            message: text.to_string(),
        }),
        None => {
            tracing::warn!(?status, answer = message, "the monitor died while starting");
            Err(MonitorError::MonitorDied {
                container_id: cfg.container_id.clone(),
            })
        }
    }
}

/// The container's exit, once the monitor recorded it.
pub fn read_exit(state_dir: &Path) -> Result<Option<ExitInfo>, MonitorError> {
    let path = state_dir.join(files::EXIT);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(MonitorError::Read { path, source }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| MonitorError::Corrupt {
            path,
            reason: e.to_string(),
        })
}

/// The monitor's and the container's pids as recorded in `state_dir` (None before the
/// container was created), for recovery after a daemon restart.
pub fn read_monitor(state_dir: &Path) -> Result<Option<Monitor>, MonitorError> {
    let Some((monitor_pid, _)) = read_identity(state_dir)? else {
        return Ok(None);
    };
    let path = state_dir.join(files::CONTAINER_PID);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(MonitorError::Read { path, source }),
    };
    let container_pid = text.trim().parse().map_err(|_| MonitorError::Corrupt {
        path,
        reason: format!("not a pid: {text:?}"),
    })?;
    Ok(Some(Monitor {
        monitor_pid,
        container_pid,
    }))
}

fn read_identity(state_dir: &Path) -> Result<Option<(i32, u64)>, MonitorError> {
    let path = state_dir.join(files::MONITOR_PID);
    match fs::read_to_string(&path) {
        Ok(text) => procfs::parse_identity(&text)
            .map(Some)
            .ok_or(MonitorError::Corrupt {
                path,
                reason: format!("not `PID START_TIME`: {text:?}"),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(MonitorError::Read { path, source }),
    }
}

/// Whether the monitor of `state_dir` runs: its pid is alive and started when it recorded,
/// so a reused pid is not taken for it.
pub fn is_alive(state_dir: &Path) -> bool {
    matches!(read_identity(state_dir), Ok(Some((pid, start))) if procfs::same_process(pid, start))
}

/// Waits until the container has exited and returns its exit. Woken by inotify on the state
/// dir (the exit file appearing) and a pidfd on the monitor (the monitor ending without one:
/// Err(Gone)), so there is no polling. Needs a tokio runtime with I/O enabled.
pub async fn wait_exit(state_dir: &Path) -> Result<ExitInfo, MonitorError> {
    let watch_error = |source| MonitorError::Watch {
        state_dir: state_dir.to_path_buf(),
        source,
    };
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(|e| watch_error(e.into()))?;
    inotify
        .add_watch(
            state_dir,
            AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE,
        )
        .map_err(|e| watch_error(e.into()))?;
    // SAFETY: Watch owns the inotify descriptor and always returns that same open descriptor
    // until the AsyncFd drops it.
    let inotify = unsafe { AsyncFd::register_with_interest(Watch(inotify), Interest::READABLE) }
        .map_err(|e| watch_error(e.into_parts().1))?;
    // Opened after the watch, and the exit file checked after both, so no exit is missed.
    let pidfd = monitor_pidfd(state_dir).map_err(watch_error)?;
    loop {
        if let Some(exit) = read_exit(state_dir)? {
            return Ok(exit);
        }
        let Some(pidfd) = &pidfd else {
            return Err(MonitorError::Gone {
                state_dir: state_dir.to_path_buf(),
            });
        };
        tokio::select! {
            guard = inotify.readable() => {
                let mut guard = guard.map_err(watch_error)?;
                // Drain the events; what matters is re-reading the exit file.
                while inotify.get_ref().0.read_events().is_ok() {}
                guard.clear_ready();
            }
            guard = pidfd.readable() => {
                // A pidfd stays readable once its process ended; no readiness to clear.
                let _ready = guard.map_err(watch_error)?;
                // The monitor is gone: the exit file is there now or never will be.
                return read_exit(state_dir)?.ok_or_else(|| MonitorError::Gone {
                    state_dir: state_dir.to_path_buf(),
                });
            }
        }
    }
}

struct Watch(Inotify);

impl AsRawFd for Watch {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A pidfd on the running monitor, None when it is not running.
fn monitor_pidfd(state_dir: &Path) -> io::Result<Option<AsyncFd<OwnedFd>>> {
    let Ok(Some((pid, start))) = read_identity(state_dir) else {
        return Ok(None);
    };
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(nix::libc::ESRCH) => Ok(None),
            _ => Err(error),
        };
    }
    // SAFETY: the syscall returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    // The pid could have been reused before the open: the start time tells.
    if !procfs::same_process(pid, start) {
        return Ok(None);
    }
    // SAFETY: the AsyncFd owns this OwnedFd, which stays open and the same until dropped.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .map(Some)
        .map_err(|e| e.into_parts().1)
}

/// Asks the monitor to reopen the container's log (ReopenContainerLog, after the kubelet
/// renamed the file away).
pub fn reopen_log(state_dir: &Path) -> Result<(), MonitorError> {
    let control = |source| MonitorError::Control {
        state_dir: state_dir.to_path_buf(),
        source,
    };
    let mut stream = sock::connect(state_dir, files::CONTROL_SOCKET).map_err(control)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(control)?;
    writeln!(stream, "{}", crate::monitor::REOPEN).map_err(control)?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(control)?;
    match reply.trim() {
        "ok" => Ok(()),
        other => Err(MonitorError::Refused {
            state_dir: state_dir.to_path_buf(),
            message: other.strip_prefix("error ").unwrap_or(other).to_string(),
        }),
    }
}
