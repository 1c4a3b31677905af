//! The kubelet binary as a process against the test run's private containerd, driven only through
//! its flags, files and the runtime it manages.

#![allow(dead_code)]

pub mod builtin;
pub mod cluster;

use kubelet_cri::api::{ContainerFilter, PodSandboxFilter};
use kubelet_cri::remote::RemoteRuntime;
use kubelet_cri::{RuntimeService, api};
use kubelet_testkit::TestRuntime;
pub use kubelet_testkit::free_port;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BUSYBOX: &str = "localhost/busybox:1.35";

/// A kubelet owns its runtime: it removes every pod it does not know. The tests share one
/// containerd, so they run their kubelets one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

pub struct Kubelet {
    pub node: String,
    pub dir: PathBuf,
    pub manifests: PathBuf,
    pub runtime: TestRuntime,
    child: Option<Child>,
    extra: Vec<String>,
    env: Vec<(String, String)>,
    _tmp: tempfile::TempDir,
}

impl Kubelet {
    /// A kubelet for one test, named after it; every path it uses is in its own temp dir.
    pub fn new(node: &str) -> Self {
        let runtime = kubelet_testkit::containerd();
        let tmp = runtime.temp_dir(node);
        let dir = tmp.path().to_path_buf();
        let manifests = dir.join("manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        std::fs::write(
            dir.join("config.yaml"),
            format!(
                // Image GC off: the suites share one runtime, whose images a kubelet must not
                // collect while another test waits to use them (upstream's e2e nodes do the same).
                // Eviction thresholds near zero: how full the host's disk is must not evict or
                // refuse test pods; the eviction tests set their own.
                "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\npodLogsDir: {}\nimageGCHighThresholdPercent: 100\nevictionHard:\n  memory.available: 1Mi\n  nodefs.available: 1%\n  imagefs.available: 1%\n",
                dir.join("pod-logs").display()
            ),
        )
        .unwrap();
        Self {
            node: node.into(),
            dir,
            manifests,
            runtime,
            child: None,
            extra: Vec::new(),
            env: Vec::new(),
            _tmp: tmp,
        }
    }

    pub fn args(&self) -> Vec<String> {
        let d = |p: &str| self.dir.join(p).display().to_string();
        let mut args = vec![
            format!("--config={}", d("config.yaml")),
            format!("--container-runtime-endpoint={}", self.runtime.endpoint()),
            format!("--pod-manifest-path={}", self.manifests.display()),
            format!("--root-dir={}", d("root")),
            format!("--cert-dir={}", d("pki")),
            format!("--container-log-symlink-dir={}", d("containers")),
            format!("--cgroup-root={}", self.runtime.cgroup_root()),
            format!("--hostname-override={}", self.node),
            "--healthz-port=0".into(),
            "-v=2".into(),
        ];
        args.extend(self.extra.iter().cloned());
        args
    }

    /// Adds lines to the KubeletConfiguration file.
    pub fn with_config(self, yaml: &str) -> Self {
        let file = self.dir.join("config.yaml");
        let mut config = std::fs::read_to_string(&file).unwrap();
        config.push_str(yaml);
        std::fs::write(file, config).unwrap();
        self
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn with_args(mut self, extra: &[&str]) -> Self {
        self.extra.extend(extra.iter().map(|s| s.to_string()));
        self
    }

    /// The kubelet API port given with --port.
    pub fn port(&self) -> u16 {
        self.extra
            .iter()
            .find_map(|a| a.strip_prefix("--port="))
            .and_then(|p| p.parse().ok())
            .expect("a --port argument")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("kubelet.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "kubelet already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_kubelet"))
            .args(self.args())
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn the kubelet binary");
        self.child = Some(child);
    }

    /// Runs the kubelet to completion (for --runonce) and returns its exit status and stdout.
    pub fn run_to_end(&self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubelet"))
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn the kubelet binary");
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut out = String::new();
                std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
                return (status, out);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "kubelet --runonce did not finish in {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the kubelet with SIGTERM, by PID, and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            for _ in 0..100 {
                if child.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the kubelet with SIGKILL, by PID, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("the kubelet is running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL)
            .expect("SIGKILL the kubelet");
        child.wait().unwrap();
    }

    pub fn write_manifest(&self, file: &str, content: &str) {
        // Write then rename, so the kubelet never reads half a file.
        let tmp = self.dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, self.manifests.join(file)).unwrap();
    }

    pub fn remove_manifest(&self, file: &str) {
        std::fs::remove_file(self.manifests.join(file)).unwrap();
    }

    /// The full name a static pod gets on this node.
    pub fn pod_name(&self, name: &str) -> String {
        format!("{name}-{}", self.node)
    }

    pub async fn cri(&self) -> RemoteRuntime {
        self.runtime.connect().await
    }

    /// The UID of the pod with this (full) name, from its sandbox labels.
    pub async fn pod_uid(&self, full_name: &str) -> Option<String> {
        let filter = PodSandboxFilter {
            label_selector: name_label(full_name),
            ..Default::default()
        };
        let sandboxes = self
            .cri()
            .await
            .list_pod_sandbox(Some(filter))
            .await
            .unwrap();
        sandboxes
            .first()
            .and_then(|s| s.labels.get("io.kubernetes.pod.uid").cloned())
    }

    pub async fn containers(&self, full_name: &str) -> Vec<api::Container> {
        let filter = ContainerFilter {
            label_selector: name_label(full_name),
            ..Default::default()
        };
        self.cri()
            .await
            .list_containers(Some(filter))
            .await
            .unwrap()
    }

    pub async fn sandboxes(&self, full_name: &str) -> Vec<api::PodSandbox> {
        let filter = PodSandboxFilter {
            label_selector: name_label(full_name),
            ..Default::default()
        };
        self.cri()
            .await
            .list_pod_sandbox(Some(filter))
            .await
            .unwrap()
    }

    /// Running containers of the pod, by container name.
    pub async fn running(&self, full_name: &str) -> HashMap<String, api::Container> {
        self.containers(full_name)
            .await
            .into_iter()
            .filter(|c| c.state == api::ContainerState::ContainerRunning as i32)
            .map(|c| (c.metadata.as_ref().unwrap().name.clone(), c))
            .collect()
    }

    /// Waits until the pod runs all the named containers.
    pub async fn wait_running(
        &self,
        full_name: &str,
        containers: &[&str],
        timeout: Duration,
    ) -> HashMap<String, api::Container> {
        wait_for(
            &format!("pod {full_name} running {containers:?}"),
            timeout,
            self,
            || async {
                let running = self.running(full_name).await;
                containers
                    .iter()
                    .all(|c| running.contains_key(*c))
                    .then_some(running)
            },
        )
        .await
    }

    /// Every pod of this node still in the runtime, by UID.
    pub async fn node_pod_uids(&self) -> Vec<String> {
        let suffix = format!("-{}", self.node);
        let cri = self.cri().await;
        let mut uids: Vec<String> = cri
            .list_pod_sandbox(None)
            .await
            .unwrap()
            .into_iter()
            .chain(Vec::new())
            .filter(|s| {
                s.labels
                    .get("io.kubernetes.pod.name")
                    .is_some_and(|n| n.ends_with(&suffix))
            })
            .filter_map(|s| s.labels.get("io.kubernetes.pod.uid").cloned())
            .collect();
        for c in cri.list_containers(None).await.unwrap() {
            if c.labels
                .get("io.kubernetes.pod.name")
                .is_some_and(|n| n.ends_with(&suffix))
            {
                uids.extend(c.labels.get("io.kubernetes.pod.uid").cloned());
            }
        }
        uids.sort();
        uids.dedup();
        uids
    }

    /// Removes whatever this test's kubelet left in the runtime and the cgroup tree.
    pub async fn cleanup(&mut self) {
        self.stop();
        for uid in self.node_pod_uids().await {
            let _ = self.runtime.remove_pod(&uid).await;
            let _ = self.runtime.remove_pod_cgroups(&uid);
        }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop();
    }
}

fn name_label(full_name: &str) -> HashMap<String, String> {
    HashMap::from([("io.kubernetes.pod.name".to_string(), full_name.to_string())])
}

/// Polls `check` every 200 ms until it gives a value; panics with the kubelet's log on timeout.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, kubelet: &Kubelet, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_until(what, timeout, &kubelet.log_path(), check).await
}

/// Polls `check` every 200 ms until it gives a value; on timeout, panics with the tail of the
/// log file of the process under test.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, log: &Path, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            panic!(
                "timed out after {timeout:?} waiting for {what}; log tail:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A pod manifest running busybox containers, each given as (name, shell script).
pub fn busybox_pod(
    name: &str,
    policy: &str,
    containers: &[(&str, &str)],
    extra_spec: &str,
) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: {policy}\n  terminationGracePeriodSeconds: 2\n{extra_spec}  containers:\n"
    );
    for (c, script) in containers {
        y.push_str(&format!(
            "  - name: {c}\n    image: {BUSYBOX}\n    imagePullPolicy: IfNotPresent\n    command: [\"/bin/sh\", \"-c\", {script:?}]\n"
        ));
    }
    y
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// A plain HTTP/1.0 GET; returns the status code and the body.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    sock.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut raw = String::new();
    sock.read_to_string(&mut raw).await.ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// The status of the pod with this full name, as the kubelet's read-only port serves it.
pub async fn served_status(port: u16, full_name: &str) -> Option<serde_json::Value> {
    let (code, body) = http_get(port, "/pods").await?;
    if code != 200 {
        return None;
    }
    let list: serde_json::Value = serde_json::from_str(&body).ok()?;
    let pod = list["items"]
        .as_array()?
        .iter()
        .find(|p| p["metadata"]["name"] == full_name)?;
    Some(pod["status"].clone())
}

/// The served status of one container (app or init) of the pod.
pub async fn served_container(
    port: u16,
    full_name: &str,
    container: &str,
) -> Option<serde_json::Value> {
    let status = served_status(port, full_name).await?;
    let all = status["containerStatuses"]
        .as_array()
        .into_iter()
        .chain(status["initContainerStatuses"].as_array())
        .flatten();
    all.into_iter().find(|c| c["name"] == container).cloned()
}
