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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;

    #[test]
    fn connects_below_a_dir_too_long_for_sun_path() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("d".repeat(120));
        std::fs::create_dir(&dir).unwrap();
        assert!(UnixStream::connect(dir.join("s.sock")).is_err());
        let handle = File::open(&dir).unwrap();
        let listener =
            UnixListener::bind(format!("/proc/self/fd/{}/s.sock", handle.as_raw_fd())).unwrap();
        let mut client = connect(&dir, "s.sock").unwrap();
        client.write_all(b"hi").unwrap();
        let mut got = [0u8; 2];
        listener.accept().unwrap().0.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi");
        let short = path_for_child(Path::new("/run/x"), "c.sock");
        assert_eq!(short, Path::new("/run/x/c.sock"));
        let long = path_for_child(&dir, "c.sock");
        assert_eq!(
            long,
            Path::new(&format!("/proc/{}/cwd/c.sock", std::process::id()))
        );
    }
}
