//! The container's stdin: attach input queued and written without ever blocking the loop.

use crate::attach::MAX_BACKLOG;
use nix::errno::Errno;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// End-of-file for a terminal in canonical mode (VEOF, ^D): a tty's stdin cannot be closed
/// without hanging up its output too.
const EOT: u8 = 0x04;

pub(super) struct Stdin {
    fd: Option<OwnedFd>,
    tty: bool,
    queued: Vec<u8>,
    /// Close once the queue is written.
    closing: bool,
}

impl Stdin {
    /// `fd`: the pipe's write end, or a duplicate of the PTY master; non-blocking.
    pub fn new(fd: OwnedFd, tty: bool) -> Self {
        Stdin {
            fd: Some(fd),
            tty,
            queued: Vec::new(),
            closing: false,
        }
    }

    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|fd| fd.as_fd())
    }

    pub fn wants_write(&self) -> bool {
        self.fd.is_some() && !self.queued.is_empty()
    }

    /// Attach clients are not read while this is true (back pressure, not buffering).
    pub fn is_full(&self) -> bool {
        self.queued.len() >= MAX_BACKLOG
    }

    pub fn push(&mut self, data: &[u8]) {
        if self.fd.is_some() && !self.closing {
            self.queued.extend_from_slice(data);
            self.flush();
        }
    }

    /// The client ended stdin: EOF for the container once what is queued is written.
    pub fn close(&mut self) {
        if self.closing || self.fd.is_none() {
            return;
        }
        if self.tty {
            self.queued.push(EOT);
        }
        self.closing = true;
        self.flush();
    }

    /// Writes what the pipe takes now.
    pub fn flush(&mut self) {
        let Some(fd) = &self.fd else { return };
        while !self.queued.is_empty() {
            match nix::unistd::write(fd, &self.queued) {
                Ok(n) => {
                    self.queued.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(error) => {
                    // The container closed its stdin (EPIPE) or the tty is gone.
                    tracing::debug!(%error, "container stdin closed");
                    self.fd = None;
                    self.queued.clear();
                    return;
                }
            }
        }
        if self.closing && !self.tty {
            self.fd = None;
        }
    }
}
