//! The monitor's life: set up, `create`, then one poll loop until the container exited and its
//! output is drained.

use super::attach_server::AttachServer;
use super::create::{self, Io};
use super::stdin::Stdin;
use super::{Ready, control, write_identity};
use crate::attach::ClientFrame;
use crate::cgroup::{self, OomCounter};
use crate::config::{MonitorConfig, files};
use crate::cri_log::{LineSplitter, LogFile, MAX_LINE, Stream};
use crate::exit::{ExitInfo, exit_code, now_ns};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// After the container exited, how long output from processes that outlived it (a container
/// sharing the host's PID namespace) is still collected before the monitor ends.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// Bytes read from one output per loop turn, so one busy stream cannot starve the others.
const READ_BUDGET: usize = 256 * 1024;

pub(super) fn run(cfg: MonitorConfig, ready: Ready) -> ExitCode {
    let mut cgroups = Vec::new();
    let code = match start(&cfg, &mut cgroups) {
        Ok(mut monitor) => {
            tracing::info!(pid = monitor.container_pid, "container created");
            ready.ok(monitor.container_pid);
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

struct Output {
    fd: OwnedFd,
    splitter: LineSplitter,
    stream: Stream,
    open: bool,
}

struct Monitor {
    cfg: MonitorConfig,
    signals: SignalFd,
    outputs: Vec<Output>,
    stdin: Option<Stdin>,
    /// A tty's master, for resizes.
    tty: Option<OwnedFd>,
    attach: AttachServer,
    control: UnixListener,
    log: LogFile,
    container_pid: i32,
    oom: Option<(OomCounter, u64)>,
    exit: Option<ExitInfo>,
    drain_until: Option<Instant>,
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

/// Everything up to a created container; Err is the message for the spawner and create.err.
fn start(cfg: &MonitorConfig, cgroups: &mut Vec<PathBuf>) -> Result<Monitor, String> {
    let signals = sigchld_fd().map_err(|e| format!("cannot watch SIGCHLD: {e}"))?;
    // Orphans of the container's processes are reparented to us, not to init or the daemon.
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("cannot become a child subreaper: {e}"))?;
    write_identity(&cfg.state_dir)?;
    *cgroups = cgroup::join(&cfg.monitor_cgroup())
        .map_err(|e| format!("cannot leave the daemon's cgroup: {e}"))?;
    let log = LogFile::open(cfg.log_path.clone())
        .map_err(|e| format!("cannot open the container log {:?}: {e}", cfg.log_path))?;
    let attach = bind(files::ATTACH_SOCKET)?;
    let control = bind(files::CONTROL_SOCKET)?;
    let (runtime_pid, mut io) = create::start(cfg)
        .map_err(|e| format!("cannot run {}: {e}", cfg.create.binary.display()))?;
    let mut reaped = HashMap::new();
    let mut master = None;
    let status = loop {
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if let Some(console) = &io.console {
            fds.push(PollFd::new(console.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, None::<u16>) {
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

fn drain_signals(signals: &SignalFd) {
    while let Ok(Some(_)) = signals.read_signal() {}
}

/// Reaps every exited child (SIGCHLD coalesces), keeping the statuses by pid.
fn reap(reaped: &mut HashMap<i32, WaitStatus>) {
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
    fn run(&mut self) {
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
                    return;
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
            ClientFrame::CloseStdin => {
                if let Some(stdin) = &mut self.stdin {
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
    fn container_exited(&mut self, status: WaitStatus) {
        for index in 0..self.outputs.len() {
            self.read_output(index, usize::MAX);
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
    let size = nix::libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which outlives the call; the fd is
    // our open PTY master.
    let result = unsafe {
        nix::libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(tty),
            nix::libc::TIOCSWINSZ,
            &size,
        )
    };
    if result != 0 {
        tracing::warn!(error = %Errno::last(), "cannot resize the tty");
    }
}
