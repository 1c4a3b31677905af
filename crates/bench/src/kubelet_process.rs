//! A kubelet under test: a separate process with its own manifest dir, root dir, log dirs and
//! read-only port, all in a temp dir, pointed at the bench's runtime and cgroup root.

use crate::error::{BenchError, Result};
use crate::pods::BenchPod;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long a kubelet gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long a fresh kubelet gets to serve /pods; one that never does is measured without the
/// "reported" figure.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Which kubelet to run and how.
#[derive(Debug, Clone)]
pub struct KubeletSpec {
    /// "A", "B", ...: how tables name it.
    pub label: String,
    pub binary: PathBuf,
    pub extra_args: Vec<String>,
}

/// Where and as whom the kubelet runs.
#[derive(Debug, Clone)]
pub struct Placement {
    pub endpoint: String,
    pub cgroup_root: String,
    pub node: String,
}

pub struct KubeletProcess {
    spec: KubeletSpec,
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
    pid: i32,
    read_only_port: u16,
    serves_pods: bool,
}

impl KubeletProcess {
    /// Starts the kubelet and waits until it serves /pods (or [`READY_TIMEOUT`] passed).
    pub async fn start(spec: &KubeletSpec, placement: &Placement) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("kubelet-bench-")
            .tempdir()
            .map_err(|err| BenchError::io("create the kubelet's temp dir", err))?;
        for sub in ["manifests", "staging", "root", "pod-logs", "containers"] {
            let path = dir.path().join(sub);
            std::fs::create_dir_all(&path)
                .map_err(|err| BenchError::io(format!("create {}", path.display()), err))?;
        }
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, kubelet_config(&dir.path().join("pod-logs")))
            .map_err(|err| BenchError::io(format!("write {}", config.display()), err))?;
        let read_only_port = free_port()?;
        let args = kubelet_args(
            dir.path(),
            placement,
            read_only_port,
            free_port()?,
            &spec.extra_args,
            takes_symlink_dir(&spec.binary),
        );
        let log_path = dir.path().join("kubelet.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|err| BenchError::io(format!("create {}", log_path.display()), err))?;
        let log_err = log
            .try_clone()
            .map_err(|err| BenchError::io(format!("open {}", log_path.display()), err))?;
        let child = Command::new(&spec.binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| BenchError::SpawnKubelet {
                binary: spec.binary.clone(),
                source,
            })?;
        let pid = child.id() as i32;
        info!(kubelet = %spec.label, binary = %spec.binary.display(), pid, "kubelet started");
        let mut process = KubeletProcess {
            spec: spec.clone(),
            dir,
            child: Mutex::new(Some(child)),
            pid,
            read_only_port,
            serves_pods: false,
        };
        process.serves_pods = process.wait_serving().await?;
        Ok(process)
    }

    async fn wait_serving(&self) -> Result<bool> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            self.check_alive()?;
            if crate::pods_endpoint::fetch(self.read_only_port)
                .await
                .is_ok()
            {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        warn!(
            kubelet = %self.spec.label,
            port = self.read_only_port,
            "the kubelet does not serve /pods: no \"reported\" figures for it"
        );
        Ok(false)
    }

    pub fn label(&self) -> &str {
        &self.spec.label
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The read-only port when the kubelet serves /pods on it.
    pub fn pods_port(&self) -> Option<u16> {
        self.serves_pods.then_some(self.read_only_port)
    }

    /// Fails when the kubelet has exited.
    pub fn check_alive(&self) -> Result<()> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(child) = child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            return Err(BenchError::KubeletExited {
                binary: self.spec.binary.clone(),
                status,
                log_tail: self.log_tail(),
            });
        }
        Ok(())
    }

    /// The last lines of the kubelet's log, for error reports.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("kubelet.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Writes the manifests, each at once (written aside, then renamed into the manifest
    /// dir), and returns the instant each appeared.
    pub fn write_manifests(&self, pods: &[BenchPod]) -> Result<Vec<(BenchPod, Instant)>> {
        let staging = self.dir.path().join("staging");
        let manifests = self.dir.path().join("manifests");
        for pod in pods {
            let path = staging.join(pod.file_name());
            std::fs::write(&path, pod.manifest())
                .map_err(|err| BenchError::io(format!("write {}", path.display()), err))?;
        }
        pods.iter()
            .map(|pod| {
                let to = manifests.join(pod.file_name());
                std::fs::rename(staging.join(pod.file_name()), &to)
                    .map_err(|err| BenchError::io(format!("move into {}", to.display()), err))?;
                Ok((pod.clone(), Instant::now()))
            })
            .collect()
    }

    pub fn remove_manifests(&self, pods: &[BenchPod]) -> Result<()> {
        for pod in pods {
            let path = self.dir.path().join("manifests").join(pod.file_name());
            std::fs::remove_file(&path)
                .map_err(|err| BenchError::io(format!("remove {}", path.display()), err))?;
        }
        Ok(())
    }

    /// Stops the kubelet with SIGTERM, by pid, and kills it when it does not exit in time.
    pub async fn stop(self) {
        let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                self.unmount_root();
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        warn!(kubelet = %self.spec.label, pid = self.pid, "the kubelet ignored SIGTERM: killing it");
        let _ = child.kill();
        let _ = child.wait();
        self.unmount_root();
    }

    /// The upstream kubelet bind-mounts its root dir onto itself (to make it shared); that mount
    /// outlives it and would keep the temp dir. For a kubelet that made none, there is nothing to
    /// unmount and the call fails harmlessly.
    fn unmount_root(&self) {
        let root = self.dir.path().join("root");
        let _ = nix::mount::umount2(&root, nix::mount::MntFlags::MNT_DETACH);
    }
}

impl Drop for KubeletProcess {
    /// An interrupted bench must not leave a kubelet behind.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
            self.unmount_root();
        }
    }
}

/// Whether the kubelet has our --container-log-symlink-dir extension; any other kubelet (the
/// upstream one) refuses unknown flags and keeps its links in /var/log/containers.
fn takes_symlink_dir(binary: &Path) -> bool {
    std::process::Command::new(binary)
        .arg("--help")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("--container-log-symlink-dir"))
        .unwrap_or(false)
}

fn kubelet_args(
    dir: &Path,
    at: &Placement,
    read_only_port: u16,
    port: u16,
    extra: &[String],
    symlink_dir: bool,
) -> Vec<String> {
    let path = |sub: &str| dir.join(sub).display().to_string();
    let mut args = vec![
        format!("--config={}", path("config.yaml")),
        format!("--container-runtime-endpoint={}", at.endpoint),
        format!("--pod-manifest-path={}", path("manifests")),
        format!("--root-dir={}", path("root")),
        format!("--cgroup-root={}", at.cgroup_root),
        format!("--hostname-override={}", at.node),
        "--healthz-port=0".into(),
        "--address=127.0.0.1".into(),
        format!("--read-only-port={read_only_port}"),
        format!("--port={port}"),
    ];
    if symlink_dir {
        args.push(format!(
            "--container-log-symlink-dir={}",
            path("containers")
        ));
    }
    args.extend(extra.iter().cloned());
    args
}

/// The config file every kubelet gets: standalone on a machine with swap and no API server (what
/// the upstream kubelet needs to run here, and ours reads the same way), with no eviction
/// thresholds and no image garbage collection: the upstream kubelet finds no image filesystem
/// capacity on a private containerd, counts that as pressure and removes the bench's images.
fn kubelet_config(pod_logs: &Path) -> String {
    format!(
        "apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
podLogsDir: {}
failSwapOn: false
cgroupDriver: cgroupfs
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
imageGCHighThresholdPercent: 100
evictionHard: {{}}
",
        pod_logs.display()
    )
}

/// A port nobody listens on right now (the kernel's pick).
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|err| BenchError::io("find a free port on 127.0.0.1", err))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|err| BenchError::io("find a free port on 127.0.0.1", err))
}
