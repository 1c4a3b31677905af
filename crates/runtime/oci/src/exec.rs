//! `exec --process FILE`: the command for a streaming session ([`OciRuntime::exec_command`]), and
//! exec_sync with stdout and stderr captured and a timeout that kills the exec'd process.

use crate::runtime::{ExecOutput, OciError, OciRuntime, TempFile};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};
use tracing::debug_span;

/// Each stream keeps at most this much (the CRI's ExecSync output cap in containerd).
const MAX_OUTPUT: usize = 16 << 20;
/// How long output is still read after the process exits while something it left behind
/// holds the pipes open (a background child, say).
const DRAIN: Duration = Duration::from_secs(1);
/// How often a silent process is checked for having exited.
const TICK: Duration = Duration::from_millis(100);
/// How long the runtime gets to reap a timed-out process before it is killed too.
const REAP: Duration = Duration::from_secs(2);

/// The files of one `exec`, removed when dropped (so keep them until the runtime has exited).
pub struct ExecFiles {
    pid_file: TempFile,
    _process_file: TempFile,
}

impl ExecFiles {
    /// Where the runtime writes the process's (host) pid.
    pub fn pid_file(&self) -> &Path {
        &self.pid_file.path
    }

    /// Whether the runtime got as far as starting the process: runc exits with the process's
    /// code, or with its own code 1 and a message before the process ever ran, which only the
    /// pid file tells apart.
    pub fn started(&self) -> bool {
        std::fs::metadata(&self.pid_file.path).is_ok_and(|m| m.len() > 0)
    }
}

impl OciRuntime {
    /// `exec --process FILE --pid-file FILE [--detach --console-socket SOCKET] ID` for
    /// `process`. With a console socket the exec is detached: runc sends the PTY master to a
    /// console socket only then (docs/terminals.md), and crun accepts the same.
    pub fn exec_command(
        &self,
        id: &str,
        process: &oci_spec::runtime::Process,
        console_socket: Option<&Path>,
    ) -> Result<(Command, ExecFiles), OciError> {
        let json = serde_json::to_vec(process).map_err(|e| OciError::Resources {
            id: id.to_string(),
            source: crate::SpecError::Encode(e),
        })?;
        let process_file = TempFile::new(id, "exec", Some(&json))?;
        let pid_file = TempFile::new(id, "exec-pid", None)?;
        let mut command = self.command();
        command
            .arg("exec")
            .arg("--process")
            .arg(&process_file.path)
            .arg("--pid-file")
            .arg(&pid_file.path);
        if let Some(socket) = console_socket {
            command.arg("--detach").arg("--console-socket").arg(socket);
        }
        command.arg(id);
        let files = ExecFiles {
            pid_file,
            _process_file: process_file,
        };
        Ok((command, files))
    }

    /// Runs `process` in the running container `id` and returns its output and exit code; after
    /// `timeout` (None or zero: none) the process is killed and ExecTimeout returned.
    pub fn exec_sync(
        &self,
        id: &str,
        process: &oci_spec::runtime::Process,
        timeout: Option<Duration>,
    ) -> Result<ExecOutput, OciError> {
        let _span = debug_span!("oci_exec_sync", container_id = id).entered();
        let (mut cmd, exec) = self.exec_command(id, process, None)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout can take the runtime and its init along.
            .process_group(0);
        let mut child = cmd.spawn().map_err(|source| OciError::Spawn {
            binary: self.binary.clone(),
            command: "exec".into(),
            source,
        })?;
        let deadline = timeout.filter(|t| !t.is_zero()).map(|t| Instant::now() + t);
        let (stdout, stderr, timed_out) = collect(&mut child, deadline);
        if timed_out {
            if let Some(pid) = std::fs::read_to_string(exec.pid_file())
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
            {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                // The runtime reaps the killed process when given the moment: killed first, it
                // would leave the process a zombie of the container's init, which may never reap
                // it (critest's execSync timeout spec looks for it with pgrep).
                let reaped_by = Instant::now() + REAP;
                while Instant::now() < reaped_by && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            return Err(OciError::ExecTimeout {
                id: id.to_string(),
                timeout: timeout.unwrap_or_default(),
            });
        }
        let status = child.wait().map_err(|source| OciError::Spawn {
            binary: self.binary.clone(),
            command: "exec".into(),
            source,
        })?;
        // runc exits with the process's code (see ExecFiles::started for its own failures).
        let exit_code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        let runtime_failed = exit_code != 0 && !exec.started();
        if runtime_failed {
            return Err(self.failed(
                "exec",
                id,
                &std::process::Output {
                    status,
                    stdout,
                    stderr,
                },
            ));
        }
        Ok(ExecOutput {
            stdout,
            stderr,
            exit_code,
        })
    }
}

/// Reads both pipes until they close (or the drain after exit ends), or the deadline passes.
/// Returns the output and whether the deadline passed first.
fn collect(child: &mut Child, deadline: Option<Instant>) -> (Vec<u8>, Vec<u8>, bool) {
    let mut out = Stream::new(child.stdout.take());
    let mut err = Stream::new(child.stderr.take());
    let mut exited_at: Option<Instant> = None;
    loop {
        if out.done() && err.done() {
            return (out.buf, err.buf, false);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return (out.buf, err.buf, true);
        }
        if exited_at.is_some_and(|t| now >= t + DRAIN) {
            return (out.buf, err.buf, false);
        }
        let mut wait = TICK;
        if let Some(d) = deadline {
            wait = wait.min(d - now);
        }
        let ready = {
            let mut fds: Vec<PollFd> = Vec::new();
            if let Some(fd) = out.fd() {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            if let Some(fd) = err.fd() {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            let ms =
                PollTimeout::try_from(wait.as_millis().max(1) as u64).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, ms) {
                Ok(0) | Err(_) => false,
                Ok(_) => true,
            }
        };
        if ready {
            out.read_some();
            err.read_some();
        } else if exited_at.is_none() && matches!(child.try_wait(), Ok(Some(_))) {
            exited_at = Some(Instant::now());
        }
    }
}

/// One captured pipe, non-blocking once polled.
struct Stream<R> {
    pipe: Option<R>,
    buf: Vec<u8>,
}

trait Pipe: Read + AsFd {}
impl Pipe for ChildStdout {}
impl Pipe for ChildStderr {}

impl<R: Pipe> Stream<R> {
    fn new(pipe: Option<R>) -> Stream<R> {
        if let Some(p) = &pipe {
            let _ = nix::fcntl::fcntl(
                p.as_fd(),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
        }
        Stream {
            pipe,
            buf: Vec::new(),
        }
    }

    fn done(&self) -> bool {
        self.pipe.is_none()
    }

    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.pipe.as_ref().map(|p| p.as_fd())
    }

    fn read_some(&mut self) {
        let Some(pipe) = self.pipe.as_mut() else {
            return;
        };
        let mut chunk = [0u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) => {
                    self.pipe = None;
                    return;
                }
                Ok(n) => {
                    let room = MAX_OUTPUT.saturating_sub(self.buf.len());
                    self.buf.extend_from_slice(&chunk[..n.min(room)]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.pipe = None;
                    return;
                }
            }
        }
    }
}
