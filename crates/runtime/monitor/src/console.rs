//! The PTY master of a tty process: received over a console socket (the OCI runtime sends it
//! with SCM_RIGHTS, runc's docs/terminals.md) and resized with TIOCSWINSZ. Shared by the
//! monitor (containers) and the daemon (tty exec sessions).

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Receives the one descriptor the runtime sends on a connected console socket; the message
/// also carries the terminal's name, which is ignored. The fd is close-on-exec.
pub fn recv_master(stream: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut name = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let message = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut master = None;
    for cmsg in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: SCM_RIGHTS installed this descriptor in our table just now; nothing
                // else owns it. Extra descriptors are wrapped too, so they are closed.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                master.get_or_insert(owned);
            }
        }
    }
    master.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the console socket message held no fd",
        )
    })
}

/// Sets the terminal's size on its master; the kernel signals the foreground process group
/// (SIGWINCH).
pub fn set_size(master: BorrowedFd<'_>, width: u16, height: u16) -> io::Result<()> {
    let size = nix::libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which outlives the call; the fd is
    // borrowed, so open for the call.
    let result = unsafe { nix::libc::ioctl(master.as_raw_fd(), nix::libc::TIOCSWINSZ, &size) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
