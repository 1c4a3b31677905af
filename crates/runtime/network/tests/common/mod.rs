//! Helpers for the root integration tests: they fail (never skip) without what they need.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;

pub const CNI_BIN: &str = "/usr/lib/cni";

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests create namespaces, mounts and bridges: run them as root"
    );
}

pub fn require_plugins(plugins: &[&str]) {
    for plugin in plugins {
        let path = Path::new(CNI_BIN).join(plugin);
        assert!(
            path.is_file(),
            "CNI plugin {} is missing: install Debian's containernetworking-plugins",
            path.display()
        );
    }
}

/// A system tool by absolute path, so a PATH without /usr/sbin does not matter.
pub fn tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed"))
}

/// Runs a command, asserting success, and returns its stdout.
pub fn run(program: &Path, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} {args:?} failed: {}",
        program.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `program args` inside the namespace `kind` (net, ipc, uts) pinned at `ns`.
pub fn run_in(kind: &str, ns: &Path, program: &str, args: &[&str]) -> String {
    let flag = format!("--{kind}={}", ns.display());
    let program = tool(program);
    let mut all = vec![flag.as_str(), program.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&tool("nsenter"), &all)
}

/// Mount points at or under `dir`, from this process's mount table.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|line| line.split(' ').nth(4).map(String::from))
        .filter(|mount_point| Path::new(mount_point).starts_with(dir))
        .collect()
}

/// The mountinfo line of the topmost mount at exactly `path`.
pub fn mountinfo_line(path: &Path) -> Option<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .rev()
        .find(|line| line.split(' ').nth(4).map(Path::new) == Some(path))
        .map(String::from)
}

/// Serves `connections` TCP connections on 0.0.0.0:`port` inside the network namespace `netns`,
/// answering each with `reply`, from a thread of its own that enters the namespace (and dies
/// with it). Returns once the listener is bound.
pub fn serve_in(
    netns: &Path,
    port: u16,
    connections: usize,
    reply: &'static str,
) -> std::thread::JoinHandle<()> {
    use std::io::Write;
    let file = std::fs::File::open(netns).unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let listener = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap();
        ready_tx.send(()).unwrap();
        for _ in 0..connections {
            let (mut stream, _) = listener.accept().unwrap();
            stream.write_all(reply.as_bytes()).unwrap();
        }
    });
    ready_rx.recv().expect("the listener thread failed");
    handle
}

/// Connects to `addr` and reads what the server says, with time limits.
pub fn fetch(addr: std::net::SocketAddr) -> String {
    use std::io::Read;
    let timeout = std::time::Duration::from_secs(5);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("read from {addr}: {e}"));
    text
}
