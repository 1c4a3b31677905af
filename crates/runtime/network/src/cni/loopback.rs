//! `lo` up in a pod's network namespace, what the loopback plugin's ADD does, without the
//! plugin's exec: a throwaway thread joins the namespace (no daemon thread ever changes its
//! namespace) and sets IFF_UP with one ioctl. The loopback network is independent of the
//! conflist, so it runs beside the chain.

use crate::NetworkError;
use nix::libc;
use nix::sched::{CloneFlags, setns};
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

/// Brings `lo` up in the namespace pinned at `netns`. Blocking (a thread spawn and join).
pub(crate) fn up(netns: &Path) -> Result<(), NetworkError> {
    let err = |op: &'static str| {
        let path = netns.to_path_buf();
        move |source: io::Error| NetworkError::Namespace { op, path, source }
    };
    let namespace = File::open(netns).map_err(err("open the network namespace"))?;
    std::thread::Builder::new()
        .name("loopback-up".into())
        .spawn(move || -> io::Result<()> {
            setns(&namespace, CloneFlags::CLONE_NEWNET)?;
            set_up(c"lo")
        })
        .map_err(err("start the loopback thread for"))?
        .join()
        .map_err(|_| NetworkError::ThreadPanicked)?
        .map_err(err("bring lo up in"))
}

/// SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP added, on `name` in the calling thread's network
/// namespace.
fn set_up(name: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: socket() has no memory-safety preconditions; a valid result is a new fd we own.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket() and nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value of it.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.to_bytes_with_nul();
    if bytes.len() > request.ifr_name.len() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    for (dst, src) in request.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let ioctl = |op, request: &mut libc::ifreq| {
        use std::os::fd::AsRawFd;
        // SAFETY: both requests read and write one ifreq, which `request` points to.
        if unsafe { libc::ioctl(socket.as_raw_fd(), op, request as *mut libc::ifreq) } < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    ioctl(libc::SIOCGIFFLAGS, &mut request)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { request.ifr_ifru.ifru_flags };
    request.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    ioctl(libc::SIOCSIFFLAGS, &mut request)
}
