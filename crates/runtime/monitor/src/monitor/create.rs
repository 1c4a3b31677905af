//! Running the OCI runtime's `create` with the container's stdio.
//!
//! Without a tty the runtime hands its own stdin, stdout and stderr to the container, so those
//! are our pipes; its error message, if any, arrives on the stderr pipe before any container
//! output can (the container's process only runs after `start`). With a tty the runtime sends
//! the PTY master over the console socket and its own output goes to a separate capture pipe.

use crate::config::{MonitorConfig, files};
use crate::cri_log::Stream;
use crate::sock;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::unistd::pipe2;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The monitor's ends of the container's stdio.
pub(super) struct Io {
    /// Read ends of stdout and stderr (no tty), or the PTY master once received (tty).
    pub outputs: Vec<(OwnedFd, Stream)>,
    /// Write end of the stdin pipe (no tty, stdin requested).
    pub stdin: Option<OwnedFd>,
    /// Where the runtime sends the PTY master (tty).
    pub console: Option<UnixListener>,
    /// The runtime's own stdout and stderr (tty).
    pub capture: Option<OwnedFd>,
}

/// Starts `<runtime> create` and returns its pid with our ends of the stdio.
pub(super) fn start(cfg: &MonitorConfig) -> io::Result<(i32, Io)> {
    let mut command = Command::new(&cfg.create.binary);
    command
        .arg("--root")
        .arg(&cfg.create.root)
        .args(&cfg.create.global_args)
        .arg("create")
        .arg("--bundle")
        .arg(&cfg.bundle)
        .arg("--pid-file")
        .arg(cfg.state_dir.join(files::CONTAINER_PID));
    let mut io = Io {
        outputs: Vec::new(),
        stdin: None,
        console: None,
        capture: None,
    };
    if cfg.tty {
        let _ = std::fs::remove_file(files::CONSOLE_SOCKET);
        let listener = UnixListener::bind(files::CONSOLE_SOCKET)?;
        listener.set_nonblocking(true)?;
        io.console = Some(listener);
        command
            .arg("--console-socket")
            .arg(sock::path_for_child(&cfg.state_dir, files::CONSOLE_SOCKET));
        let (read, write) = pipe()?;
        io.capture = Some(read);
        command
            .stdin(Stdio::null())
            .stdout(write.try_clone()?)
            .stderr(write);
    } else {
        let (out_read, out_write) = pipe()?;
        let (err_read, err_write) = pipe()?;
        io.outputs.push((out_read, Stream::Stdout));
        io.outputs.push((err_read, Stream::Stderr));
        command.stdout(out_write).stderr(err_write);
        if cfg.stdin {
            // Only our end is non-blocking: the container's read end must block (busybox cat
            // fails with EAGAIN otherwise; runc happens to reset it, crun does not).
            let (in_read, in_write) = pipe2(OFlag::O_CLOEXEC)?;
            set_nonblocking(&in_write)?;
            io.stdin = Some(in_write);
            command.stdin(in_read);
        } else {
            command.stdin(Stdio::null());
        }
    }
    command.arg(&cfg.container_id);
    // The child's ends close with `command` when this returns: the container holds them now.
    let child = command.spawn()?;
    Ok((child.id() as i32, io))
}

/// A pipe whose read end is non-blocking; both ends close on exec (the child gets dup2'd copies).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
    set_nonblocking(&read)?;
    Ok((read, write))
}

pub(super) fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Takes a PTY master sent by the runtime, if a connection is waiting.
pub(super) fn receive_console(listener: &UnixListener) -> io::Result<Option<OwnedFd>> {
    let stream = match listener.accept() {
        Ok((stream, _)) => stream,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err(e),
    };
    // The runtime sends the fd right after connecting; never wait on a stuck one for long.
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let master = crate::console::recv_master(stream.as_fd())?;
    set_nonblocking(&master)?;
    Ok(Some(master))
}

/// Whatever the runtime wrote before exiting, read without blocking (a stray holder of the
/// pipe must not hang us).
pub(super) fn read_available(fd: &OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while out.len() < 1 << 20 {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).trim().to_string()
}
