//! The built-in runtime under test: `KUBELET runtime` served alone as a separate process, on a
//! private socket, with its root and state dirs, its CNI network (a bridge and subnet of its own,
//! so it coexists with the bench's containerd) and the offline images, all in a temp dir. It is
//! stopped by PID at the end, after the bench removed every pod through CRI (container monitors
//! outlive the runtime by design); then whatever it left is removed: mounts under its dir, the
//! bridge, the dir.

use crate::error::{BenchError, Result};
use crate::runtime_env::scripts_dir;
use kubelet_cri::remote::RemoteRuntime;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Neither containerd's (kubeletrs0, 10.88.0.0/16 in tests; kbench0, 10.77.0.0/16 in the bench)
/// nor a test run's second daemon's.
const BRIDGE: &str = "kbench1";
const SUBNET: &str = "10.78.0.0/16";
/// Debian's packaged plugins, as containerd-up.sh gives containerd.
const CNI_BIN_DIR: &str = "/usr/lib/cni";
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_GRACE: Duration = Duration::from_secs(10);
/// What scripts/build-images.sh writes.
const ARCHIVES: [&str; 2] = ["busybox-1.35.oci.tar", "pause-3.10.oci.tar"];

pub struct BuiltinRuntime {
    binary: PathBuf,
    /// `None` once removed (or kept because mounts remain).
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    pid: i32,
    endpoint: String,
}

impl BuiltinRuntime {
    /// Builds and imports the images, starts `binary runtime` and waits until it serves CRI.
    pub async fn start(binary: &Path) -> Result<Self> {
        if !binary.is_file() {
            return Err(BenchError::io(
                format!(
                    "built-in runtime binary {} (build it with `cargo build --release --bin kubelet`)",
                    binary.display()
                ),
                std::io::ErrorKind::NotFound.into(),
            ));
        }
        // Short: the socket path must fit in 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("kbb.")
            .tempdir_in("/tmp")
            .map_err(|err| BenchError::io("create the built-in runtime's dir in /tmp", err))?;
        let at = |sub: &str| dir.path().join(sub);
        for sub in [
            "root",
            "state",
            "cni/net.d",
            "cni/ipam",
            "images",
            "certs.d",
        ] {
            std::fs::create_dir_all(at(sub))
                .map_err(|err| BenchError::io(format!("create {}", at(sub).display()), err))?;
        }
        let conflist_path = at("cni/net.d/10-kubelet-bench.conflist");
        std::fs::write(&conflist_path, conflist(BRIDGE, SUBNET, &at("cni/ipam")))
            .map_err(|err| BenchError::io(format!("write {}", conflist_path.display()), err))?;

        let build = scripts_dir().join("build-images.sh");
        run(Command::new("bash").arg(&build).arg(at("images")))?;
        let path_arg = |sub: &str| at(sub).display().to_string();
        run(Command::new(binary)
            .args(["runtime", "import", "--root", &path_arg("root")])
            .args(["--state", &path_arg("state")])
            .args(ARCHIVES.map(|a| at("images").join(a))))?;

        let socket = at("state/cri.sock");
        let endpoint = format!("unix://{}", socket.display());
        let log_path = at("runtime.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|err| BenchError::io(format!("create {}", log_path.display()), err))?;
        let log_err = log
            .try_clone()
            .map_err(|err| BenchError::io(format!("open {}", log_path.display()), err))?;
        let child = Command::new(binary)
            .args(["runtime", "--listen", &endpoint])
            .args(["--root", &path_arg("root"), "--state", &path_arg("state")])
            .args(["--cni-conf-dir", &path_arg("cni/net.d")])
            .args(["--cni-bin-dir", CNI_BIN_DIR])
            .args(["--registry-config", &path_arg("certs.d")])
            // Its own process group: a Ctrl-C reaches the bench, which removes the pods through
            // this runtime before stopping it.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|err| BenchError::io(format!("start {} runtime", binary.display()), err))?;
        let pid = child.id() as i32;
        info!(binary = %binary.display(), pid, %endpoint, "built-in runtime started");
        let mut runtime = BuiltinRuntime {
            binary: binary.to_path_buf(),
            dir: Some(dir),
            child: Some(child),
            pid,
            endpoint,
        };
        if let Err(err) = runtime.wait_serving(&socket).await {
            runtime.shutdown();
            return Err(err);
        }
        Ok(runtime)
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The dir every process of this runtime names on its command line (the daemon's root and
    /// state, each monitor's state).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(|dir| dir.path())
    }

    async fn wait_serving(&mut self, socket: &Path) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(BenchError::RuntimeExited {
                    binary: self.binary.clone(),
                    status,
                    log_tail: self.log_tail(),
                });
            }
            if socket.exists()
                && RemoteRuntime::connect(&self.endpoint, &self.endpoint, Duration::from_secs(2))
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchError::Timeout {
                    what: format!("the built-in runtime to serve {}", self.endpoint),
                    after: READY_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let Some(dir) = &self.dir else {
            return String::new();
        };
        let log = std::fs::read_to_string(dir.path().join("runtime.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops the runtime (SIGTERM by PID, SIGKILL after [`STOP_GRACE`]) and removes what it
    /// left. The caller removed every pod through CRI before.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
            let deadline = Instant::now() + STOP_GRACE;
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    warn!(
                        pid = self.pid,
                        "the built-in runtime ignored SIGTERM: killing it"
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            info!(pid = self.pid, "built-in runtime stopped");
        }
        let Some(dir) = self.dir.take() else {
            return;
        };
        remove_leftover_containers(&dir.path().join("state/oci"));
        let leftover = crate::proc_sampler::processes_naming(dir.path());
        if !leftover.is_empty() {
            warn!(pids = ?leftover, dir = %dir.path().display(),
                "processes of the built-in runtime are still running (pods not removed?)");
        }
        let mut mounts = mounts_under(dir.path());
        mounts.sort_by(|a, b| b.cmp(a));
        for target in &mounts {
            warn!(mount = %target.display(), "unmounting what the built-in runtime left");
            if let Err(err) = nix::mount::umount(target) {
                warn!(mount = %target.display(), %err, "cannot unmount");
            }
        }
        if Path::new("/sys/class/net").join(BRIDGE).exists() {
            match Command::new("ip").args(["link", "del", BRIDGE]).status() {
                Ok(status) if status.success() => {}
                Ok(status) => warn!(bridge = BRIDGE, %status, "cannot delete the bridge"),
                Err(err) => warn!(bridge = BRIDGE, %err, "cannot run ip link del"),
            }
        }
        if mounts_under(dir.path()).is_empty() {
            if let Err(err) = dir.close() {
                warn!(%err, "cannot remove the built-in runtime's dir");
            }
        } else {
            // Never remove across a mount.
            let kept = dir.keep();
            warn!(dir = %kept.display(), "mounts remain: leaving the built-in runtime's dir");
        }
    }
}

impl Drop for BuiltinRuntime {
    /// An interrupted bench must not leave the runtime behind.
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Containers the pod removal missed, through each OCI runtime's state root (STATE/oci/BINARY):
/// deleting a container ends its monitor too. Normally there are none.
fn remove_leftover_containers(oci_states: &Path) {
    let Ok(entries) = std::fs::read_dir(oci_states) else {
        return;
    };
    for state in entries.flatten().map(|e| e.path()) {
        let Some(binary) = state.file_name().map(|n| n.to_owned()) else {
            continue;
        };
        let Ok(list) = Command::new(&binary)
            .arg("--root")
            .arg(&state)
            .args(["list", "-q"])
            .output()
        else {
            continue;
        };
        for id in String::from_utf8_lossy(&list.stdout).split_whitespace() {
            warn!(
                container = id,
                "removing a container the built-in runtime left"
            );
            let deleted = Command::new(&binary)
                .arg("--root")
                .arg(&state)
                .args(["delete", "--force", id])
                .status();
            if !deleted.is_ok_and(|s| s.success()) {
                warn!(container = id, "cannot delete it");
            }
        }
    }
}

/// Runs `command` to completion; its output becomes the error when it fails.
fn run(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|err| BenchError::io(format!("run {shown}"), err))?;
    if output.status.success() {
        return Ok(());
    }
    Err(BenchError::Command {
        command: shown,
        status: output.status,
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

/// The CNI network containerd-up.sh gives containerd (the runtime adds loopback itself, as
/// containerd does), on `bridge` and `subnet`, with pod IPs kept in `ipam_dir`.
fn conflist(bridge: &str, subnet: &str, ipam_dir: &Path) -> String {
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "kubelet-bench-builtin",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                // Off, so that pods without host ports never touch iptables.
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": ipam_dir,
                    "ranges": [[{ "subnet": subnet }]],
                    "routes": [{ "dst": "0.0.0.0/0" }]
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } }
        ]
    });
    format!("{conf:#}\n")
}

/// Mount points at or below `dir`, from /proc/self/mountinfo.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|target| target.starts_with(dir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_is_a_bridge_of_its_own_with_host_local_ipam_in_the_bench_dir() {
        let text = conflist("kbench1", "10.78.0.0/16", Path::new("/tmp/kbr.x/cni/ipam"));
        let conf: serde_json::Value = serde_json::from_str(&text).unwrap();
        let plugins = conf["plugins"].as_array().unwrap();
        let types: Vec<&str> = plugins
            .iter()
            .map(|p| p["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["bridge", "portmap"]);
        assert_eq!(plugins[0]["bridge"], "kbench1");
        assert_eq!(plugins[0]["ipMasq"], false);
        assert_eq!(plugins[0]["ipam"]["type"], "host-local");
        assert_eq!(plugins[0]["ipam"]["dataDir"], "/tmp/kbr.x/cni/ipam");
        assert_eq!(plugins[0]["ipam"]["ranges"][0][0]["subnet"], "10.78.0.0/16");
    }

    #[test]
    fn its_network_differs_from_the_bench_containerd_and_the_tests() {
        assert_ne!(BRIDGE, crate::runtime_env::BRIDGE);
        assert_ne!(SUBNET, crate::runtime_env::SUBNET);
        assert_ne!(BRIDGE, "kubeletrs0");
        assert!(!SUBNET.starts_with("10.88."));
    }

    #[test]
    fn only_mounts_below_the_dir_are_ours() {
        let mounts = mounts_under(Path::new("/"));
        assert!(mounts.contains(&PathBuf::from("/")), "{mounts:?}");
        assert!(mounts_under(Path::new("/nonexistent-kubelet-bench")).is_empty());
    }
}
