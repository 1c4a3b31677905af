//! The built-in runtime under test, without containerd: `kubelet runtime` or a kubelet embedding
//! the runtime, on a node of its own (temp dirs, a CNI bridge and subnet of its own, the offline
//! images imported), driven with crictl.
//!
//! Tests fail, never skip, when the machine lacks root, runc, the CNI plugins or crictl. A
//! [`Node`] cleans up everything it started when dropped, also after a failed test: its process
//! is stopped by PID, then a fresh runtime on the same dirs removes every pod left, and the
//! bridge goes.

use kubelet_cri::remote::RemoteRuntime;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CNI_BIN_DIR: &str = "/usr/lib/cni";
const CNI_PLUGINS: &[&str] = &["bridge", "host-local", "loopback"];
const SOCKET_WAIT: Duration = Duration::from_secs(30);

/// The repository's root (the crate is crates/kubelet).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// crictl, from ../shared/tools beside the repository, as CI lays it out.
fn crictl_path() -> PathBuf {
    let get = repo_root().join("../shared/tools/get");
    assert!(
        get.is_file(),
        "the built-in runtime tests need crictl from {}, which does not exist (CI clones the repository with ../shared beside it)",
        get.display()
    );
    let out = Command::new(&get)
        .arg("crictl")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", get.display()));
    assert!(
        out.status.success(),
        "{} crictl failed: {}",
        get.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A node for one test. `index` tells apart the tests of one binary; the process id, concurrent
/// test runs on one machine.
pub struct Node {
    pub dir: PathBuf,
    pub bridge: String,
    crictl: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Node {
    pub fn new(name: &str, index: u32) -> Node {
        kubelet_testkit::preflight::require_root();
        kubelet_testkit::preflight::require_binaries(&["runc"]);
        kubelet_testkit::preflight::require_cni_plugins(Path::new(CNI_BIN_DIR), CNI_PLUGINS);
        let crictl = crictl_path();
        let tmp = tempfile::Builder::new()
            .prefix(&format!("krt-{name}-"))
            .tempdir()
            .expect("a temp dir");
        let dir = tmp.path().to_path_buf();
        let id = std::process::id();
        let bridge = format!("krt{}x{index}", id % 100_000);
        let subnet = format!("10.98.{}.0/24", (id + index) % 250 + 1);
        let conf_dir = dir.join("net.d");
        std::fs::create_dir_all(&conf_dir).unwrap();
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": bridge,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": subnet}]],
                        "dataDir": dir.join("ipam"),
                    },
                },
                {"type": "loopback"},
            ],
        });
        std::fs::write(conf_dir.join("10-test.conflist"), conflist.to_string()).unwrap();
        let node = Node {
            log: dir.join("process.log"),
            dir,
            bridge,
            crictl,
            child: None,
            _tmp: tmp,
        };
        node.import_images();
        node
    }

    pub fn runtime_root(&self) -> PathBuf {
        self.dir.join("runtime-root")
    }

    pub fn runtime_state(&self) -> PathBuf {
        self.dir.join("runtime-state")
    }

    pub fn cni_conf_dir(&self) -> PathBuf {
        self.dir.join("net.d")
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Builds the offline images and imports them with `kubelet runtime import`.
    fn import_images(&self) {
        let images = self.dir.join("images");
        let built = Command::new("bash")
            .arg(repo_root().join("scripts/build-images.sh"))
            .arg(&images)
            .output()
            .expect("run scripts/build-images.sh");
        assert!(
            built.status.success(),
            "scripts/build-images.sh: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        let imported = self.import();
        let stdout = String::from_utf8_lossy(&imported.stdout);
        assert!(
            imported.status.success(),
            "kubelet runtime import: {stdout}{}",
            String::from_utf8_lossy(&imported.stderr)
        );
        for name in [super::BUSYBOX, "localhost/pause:3.10"] {
            assert!(
                stdout
                    .lines()
                    .any(|line| line.starts_with(&format!("{name} sha256:"))),
                "import does not report {name}: {stdout}"
            );
        }
    }

    /// `kubelet runtime import` of the offline images into this node's runtime.
    pub fn import(&self) -> Output {
        let images = self.dir.join("images");
        Command::new(env!("CARGO_BIN_EXE_kubelet"))
            .args(["runtime", "import", "--root"])
            .arg(self.runtime_root())
            .arg("--state")
            .arg(self.runtime_state())
            .arg(images.join("busybox-1.35.oci.tar"))
            .arg(images.join("pause-3.10.oci.tar"))
            .output()
            .expect("run kubelet runtime import")
    }

    /// The flags that put the runtime's files and network on this node.
    fn runtime_flags(&self, prefix: &str) -> Vec<String> {
        vec![
            format!("--{prefix}root={}", self.runtime_root().display()),
            format!("--{prefix}state={}", self.runtime_state().display()),
            format!("--cni-conf-dir={}", self.cni_conf_dir().display()),
            format!("--cni-bin-dir={CNI_BIN_DIR}"),
        ]
    }

    /// The kubelet's flags for a static pod node named `name`, runtime flags aside: every path in
    /// this node's dir, and the cgroup root `/kubelet-rs-test/<name>`.
    pub fn kubelet_args(&self, name: &str) -> Vec<String> {
        let d = |p: &str| self.dir.join(p).display().to_string();
        std::fs::create_dir_all(self.dir.join("manifests")).unwrap();
        std::fs::write(
            self.dir.join("config.yaml"),
            format!(
                "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\npodLogsDir: {}\n",
                d("pod-logs")
            ),
        )
        .unwrap();
        vec![
            format!("--config={}", d("config.yaml")),
            format!("--pod-manifest-path={}", d("manifests")),
            format!("--root-dir={}", d("root")),
            format!("--cert-dir={}", d("pki")),
            format!("--container-log-symlink-dir={}", d("containers")),
            // A root of its own: a kubelet's housekeeping kills what runs in pod cgroups it
            // does not know, and the tests of a binary run their nodes side by side.
            format!("--cgroup-root={}/{name}", kubelet_testkit::CGROUP_ROOT),
            format!("--hostname-override={name}"),
            "--healthz-port=0".into(),
            "-v=2".into(),
        ]
    }

    /// The CRI socket of the runtime a kubelet started with [`Self::kubelet_args`] embeds.
    pub fn kubelet_socket(&self) -> PathBuf {
        self.dir.join("root/runtime/cri.sock")
    }

    /// Starts `kubelet runtime` serving `socket` and waits until it answers.
    pub fn start_runtime(&mut self, socket: &Path) {
        let mut args = vec![
            "runtime".to_string(),
            format!("--listen=unix://{}", socket.display()),
        ];
        args.extend(self.runtime_flags(""));
        self.spawn(&args);
        self.wait_for_socket(socket);
    }

    /// Starts a kubelet on this node with `args` and the runtime flags, and no runtime endpoint:
    /// it embeds the built-in runtime.
    pub fn start_kubelet(&mut self, args: &[String]) {
        let mut all = args.to_vec();
        all.extend(self.runtime_flags("runtime-"));
        self.spawn(&all);
    }

    fn spawn(&mut self, args: &[String]) {
        assert!(self.child.is_none(), "a process already runs on this node");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_kubelet"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn the kubelet binary");
        self.child = Some(child);
    }

    /// Waits until a CRI client gets an answer on `socket`.
    pub fn wait_for_socket(&self, socket: &Path) {
        let deadline = Instant::now() + SOCKET_WAIT;
        while self.crictl(socket, &["version"]).is_err() {
            assert!(
                Instant::now() < deadline,
                "no CRI answer on {} within {SOCKET_WAIT:?}; log:\n{}",
                socket.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends `signal` to the running process by its PID and waits for it to end.
    pub fn stop(&mut self, signal: nix::sys::signal::Signal) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, signal);
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.wait();
    }

    /// A CRI client of `socket`, for polls too quick for crictl (a process start each).
    pub async fn cri(&self, socket: &Path) -> RemoteRuntime {
        let endpoint = format!("unix://{}", socket.display());
        RemoteRuntime::connect(&endpoint, &endpoint, SOCKET_WAIT)
            .await
            .unwrap_or_else(|e| panic!("no CRI answer on {endpoint}: {e}"))
    }

    /// A crictl command against `socket`, for the caller to wire up and run.
    pub fn crictl_command(&self, socket: &Path, args: &[&str]) -> Command {
        let endpoint = format!("unix://{}", socket.display());
        let mut command = Command::new(&self.crictl);
        command
            .args([
                "--runtime-endpoint",
                &endpoint,
                "--image-endpoint",
                &endpoint,
            ])
            .args(["--timeout", "60s"])
            .args(args);
        command
    }

    /// crictl against `socket`: its stdout, or the failure with stderr.
    pub fn crictl(&self, socket: &Path, args: &[&str]) -> Result<String, String> {
        let out: Output = self
            .crictl_command(socket, args)
            .output()
            .map_err(|e| format!("cannot run crictl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "crictl {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// crictl that must succeed.
    pub fn crictl_ok(&self, socket: &Path, args: &[&str]) -> String {
        self.crictl(socket, args)
            .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", self.log()))
    }

    /// Waits until the runtime on `socket` holds no container and no pod sandbox.
    pub async fn wait_until_empty(&self, socket: &Path, timeout: Duration) {
        super::wait_until("the pods removed", timeout, self.log_path(), || async {
            let gone = self.containers(socket).is_empty() && self.sandboxes(socket).is_empty();
            gone.then_some(())
        })
        .await
    }

    /// The containers `crictl ps -a -o json` lists, as JSON.
    pub fn containers(&self, socket: &Path) -> Vec<Value> {
        let out = self.crictl_ok(socket, &["ps", "-a", "-o", "json"]);
        let list: Value = serde_json::from_str(&out).expect("crictl ps JSON");
        list["containers"].as_array().cloned().unwrap_or_default()
    }

    /// The sandboxes `crictl pods -o json` lists, as JSON.
    pub fn sandboxes(&self, socket: &Path) -> Vec<Value> {
        let out = self.crictl_ok(socket, &["pods", "-o", "json"]);
        let list: Value = serde_json::from_str(&out).expect("crictl pods JSON");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// The mount points under this node's dir. The runtime mounts in the test's mount
    /// namespace; the temp dir's path has no characters that mountinfo escapes.
    pub fn mounts(&self) -> Vec<String> {
        let dir = self.dir.display().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .expect("read /proc/self/mountinfo")
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .filter(|point| Path::new(point).starts_with(&dir))
            .map(str::to_string)
            .collect()
    }

    /// The monitor processes of this node's runtime, by the config file each was started with
    /// (`kubelet monitor --config STATE_DIR/... --ready-fd N`).
    pub fn monitors(&self) -> Vec<PathBuf> {
        let state = self.runtime_state();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        procs
            .flatten()
            .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
            .filter_map(|cmdline| {
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                let is_monitor = args.get(1) == Some(&&b"monitor"[..]);
                let config = PathBuf::from(String::from_utf8_lossy(args.get(3)?).into_owned());
                (is_monitor && config.starts_with(&state)).then_some(config)
            })
            .collect()
    }

    /// Removes every pod and container a test left, through a runtime of its own on the node's
    /// dirs (the test's process may be gone), then the bridge.
    fn clean_up(&mut self) {
        let socket = self.dir.join("cleanup.sock");
        let mut args = vec![
            "runtime".to_string(),
            format!("--listen=unix://{}", socket.display()),
        ];
        args.extend(self.runtime_flags(""));
        self.spawn(&args);
        let deadline = Instant::now() + SOCKET_WAIT;
        while self.crictl(&socket, &["version"]).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        for pod in self
            .crictl(&socket, &["pods", "-q"])
            .unwrap_or_default()
            .lines()
        {
            let _ = self.crictl(&socket, &["stopp", pod]);
            let _ = self.crictl(&socket, &["rmp", "-f", pod]);
        }
        for container in self
            .crictl(&socket, &["ps", "-a", "-q"])
            .unwrap_or_default()
            .lines()
        {
            let _ = self.crictl(&socket, &["rm", "-f", container]);
        }
        self.stop(nix::sys::signal::Signal::SIGTERM);
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop(nix::sys::signal::Signal::SIGTERM);
        self.clean_up();
    }
}
