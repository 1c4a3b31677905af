//! The poll loop of a created container, until it exited and its output is drained.

use super::attach_server::AttachServer;
use super::control;
use super::stdin::Stdin;
use crate::attach::ClientFrame;
use crate::cgroup::OomCounter;
use crate::config::{MonitorConfig, files};
use crate::cri_log::{LineSplitter, LogFile, Stream};
use crate::exit::{ExitInfo, exit_code, now_ns};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

/// After the container exited, how long output from processes that outlived it (a container
/// sharing the host's PID namespace) is still collected before the monitor ends.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// Bytes read from one output per loop turn, so one busy stream cannot starve the others.
const READ_BUDGET: usize = 256 * 1024;
/// Bytes read from each output when the container exited, before the exit file is written:
/// more than any pipe holds, and bounded in case a surviving process keeps writing.
const EXIT_DRAIN_BUDGET: usize = 4 << 20;

pub(super) struct Output {
    pub(super) fd: OwnedFd,
    pub(super) splitter: LineSplitter,
    pub(super) stream: Stream,
    pub(super) open: bool,
}

pub(super) struct Monitor {
    pub(super) cfg: MonitorConfig,
    pub(super) signals: SignalFd,
    pub(super) outputs: Vec<Output>,
    pub(super) stdin: Option<Stdin>,
    /// A tty's master, for resizes.
    pub(super) tty: Option<OwnedFd>,
    pub(super) attach: AttachServer,
    pub(super) control: UnixListener,
    pub(super) log: LogFile,
    pub(super) container_pid: i32,
    pub(super) oom: Option<(OomCounter, u64)>,
    pub(super) exit: Option<ExitInfo>,
    pub(super) drain_until: Option<Instant>,
}

#[derive(Clone, Copy)]
enum Token {
    Signals,
    Output(usize),
    Stdin,
    AttachListener,
    AttachClient(usize),
    Control,
}

pub(super) fn drain_signals(signals: &SignalFd) {
    while let Ok(Some(_)) = signals.read_signal() {}
}

/// Reaps every exited child (SIGCHLD coalesces), keeping the statuses by pid.
pub(super) fn reap(reaped: &mut HashMap<i32, WaitStatus>) {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(status) => {
                if let Some(pid) = status.pid() {
                    reaped.insert(pid.as_raw(), status);
                }
            }
            Err(Errno::EINTR) => {}
            Err(error) => {
                tracing::error!(%error, "waitpid");
                return;
            }
        }
    }
}

impl Monitor {
    pub(super) fn run(&mut self) {
        while !self.done() {
            let timeout = self.drain_until.map(|until| {
                u16::try_from(until.saturating_duration_since(Instant::now()).as_millis())
                    .unwrap_or(u16::MAX)
            });
            let mut tokens = vec![Token::Signals, Token::AttachListener, Token::Control];
            let mut fds = vec![
                PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.attach.listener(), PollFlags::POLLIN),
                PollFd::new(self.control.as_fd(), PollFlags::POLLIN),
            ];
            for (index, output) in self.outputs.iter().enumerate().filter(|(_, o)| o.open) {
                tokens.push(Token::Output(index));
                fds.push(PollFd::new(output.fd.as_fd(), PollFlags::POLLIN));
            }
            if let Some(fd) = self
                .stdin
                .as_ref()
                .filter(|s| s.wants_write())
                .and_then(Stdin::fd)
            {
                tokens.push(Token::Stdin);
                fds.push(PollFd::new(fd, PollFlags::POLLOUT));
            }
            let stdin_full = self.stdin.as_ref().is_some_and(Stdin::is_full);
            for (index, client) in self.attach.clients() {
                let mut flags = PollFlags::empty();
                flags.set(PollFlags::POLLIN, !stdin_full);
                flags.set(PollFlags::POLLOUT, client.wants_write());
                if !flags.is_empty() {
                    tokens.push(Token::AttachClient(index));
                    fds.push(PollFd::new(client.stream(), flags));
                }
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(error) => {
                    tracing::error!(%error, "poll failed, the monitor ends");
                    break;
                }
            }
            let ready: Vec<(Token, PollFlags)> = tokens
                .into_iter()
                .zip(
                    fds.iter()
                        .map(|fd| fd.revents().unwrap_or(PollFlags::empty())),
                )
                .filter(|(_, revents)| !revents.is_empty())
                .collect();
            drop(fds);
            for (token, revents) in ready {
                self.handle(token, revents);
            }
            if self.attach.reap()
                && self.cfg.stdin_once
                && let Some(stdin) = &mut self.stdin
            {
                stdin.close();
            }
        }
        self.finish();
    }

    fn done(&self) -> bool {
        self.exit.is_some()
            && (self.outputs.iter().all(|o| !o.open)
                || self
                    .drain_until
                    .is_some_and(|until| Instant::now() >= until))
    }

    fn handle(&mut self, token: Token, revents: PollFlags) {
        match token {
            Token::Signals => {
                drain_signals(&self.signals);
                let mut reaped = HashMap::new();
                reap(&mut reaped);
                if let Some(status) = reaped.remove(&self.container_pid) {
                    self.container_exited(status);
                }
            }
            Token::Output(index) => self.read_output(index, READ_BUDGET),
            Token::Stdin => {
                if let Some(stdin) = &mut self.stdin {
                    stdin.flush();
                }
            }
            Token::AttachListener => self.attach.accept(),
            Token::AttachClient(index) => {
                if revents.contains(PollFlags::POLLOUT) {
                    self.attach.write(index);
                }
                if revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                    for frame in self.attach.read(index) {
                        self.apply(frame);
                    }
                }
            }
            Token::Control => control::serve(&self.control, &mut self.log),
        }
    }

    fn apply(&mut self, frame: ClientFrame) {
        match frame {
            ClientFrame::Stdin(data) => {
                if let Some(stdin) = &mut self.stdin {
                    stdin.push(&data);
                }
            }
            // One client's input ended; the container's stdin ends with it only for
            // stdin_once, else later attach sessions may still write (containerd's rule).
            ClientFrame::CloseStdin => {
                if let Some(stdin) = self.stdin.as_mut().filter(|_| self.cfg.stdin_once) {
                    stdin.close();
                }
            }
            ClientFrame::Resize { width, height } => {
                if let Some(tty) = &self.tty {
                    resize(tty, width, height);
                }
            }
        }
    }

    /// Reads up to `budget` bytes of one output into the log and to attach clients.
    fn read_output(&mut self, index: usize, budget: usize) {
        let mut buf = [0u8; 32 * 1024];
        let mut read = 0;
        let output = &mut self.outputs[index];
        while output.open && read < budget {
            match nix::unistd::read(&output.fd, &mut buf) {
                Ok(0) | Err(Errno::EIO) => {
                    // EOF; a tty's master reads EIO once the last slave closed.
                    output.open = false;
                    let log = &mut self.log;
                    output
                        .splitter
                        .finish(&mut |s, p, t| log.write_record(s, p, t));
                }
                Ok(n) => {
                    read += n;
                    let log = &mut self.log;
                    output
                        .splitter
                        .feed(&buf[..n], &mut |s, p, t| log.write_record(s, p, t));
                    self.attach.broadcast(output.stream, &buf[..n]);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(error) => {
                    tracing::warn!(%error, stream = output.stream.name(), "cannot read the container's output");
                    output.open = false;
                }
            }
        }
    }

    /// Records the exit: what the container wrote before it died goes to the log first, so a
    /// reader that sees the exit file also sees those lines.
    pub(super) fn container_exited(&mut self, status: WaitStatus) {
        for index in 0..self.outputs.len() {
            self.read_output(index, EXIT_DRAIN_BUDGET);
        }
        let oom_killed = self
            .oom
            .as_ref()
            .is_some_and(|(counter, base)| counter.read().is_some_and(|now| now > *base));
        let info = ExitInfo {
            code: exit_code(status),
            finished_at_ns: now_ns(),
            oom_killed,
        };
        tracing::info!(code = info.code, oom_killed, "container exited");
        match serde_json::to_vec(&info) {
            Ok(bytes) => {
                if let Err(error) =
                    runtime_state::write_atomic(&self.cfg.state_dir.join(files::EXIT), &bytes)
                {
                    tracing::error!(%error, "cannot write the exit file");
                }
            }
            Err(error) => tracing::error!(%error, "cannot encode the exit file"),
        }
        self.exit = Some(info);
        self.drain_until = Some(Instant::now() + DRAIN_AFTER_EXIT);
    }

    fn finish(&mut self) {
        let log = &mut self.log;
        for output in &mut self.outputs {
            output
                .splitter
                .finish(&mut |s, p, t| log.write_record(s, p, t));
        }
        let code = self.exit.as_ref().map_or(-1, |e| e.code);
        self.attach.finish(code);
        tracing::info!("monitor done");
    }
}

fn resize(tty: &OwnedFd, width: u16, height: u16) {
    if let Err(error) = crate::console::set_size(tty.as_fd(), width, height) {
        tracing::warn!(%error, "cannot resize the tty");
    }
}
