//! Unix sockets in a state dir whose path may be longer than sun_path (108 bytes).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Longest socket path used as is; longer ones go through /proc/self/fd.
const MAX_DIRECT: usize = 100;

/// Connects to `dir/name`, through an open handle on `dir` when the full path is too long.
pub fn connect(dir: &Path, name: &str) -> io::Result<UnixStream> {
    let path = dir.join(name);
    if path.as_os_str().len() <= MAX_DIRECT {
        return UnixStream::connect(path);
    }
    let handle = File::open(dir)?;
    UnixStream::connect(format!("/proc/self/fd/{}/{name}", handle.as_raw_fd()))
}

/// The path a child process of ours can use for `name` in our working dir (the monitor runs in
/// its state dir): the full path when short enough, else through /proc/PID/cwd.
pub fn path_for_child(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    if path.as_os_str().len() <= MAX_DIRECT {
        path
    } else {
        format!("/proc/{}/cwd/{name}", std::process::id()).into()
    }
}
