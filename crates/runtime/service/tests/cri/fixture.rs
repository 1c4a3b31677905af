//! What every case shares: a short temp dir, the offline busybox image, a CNI network of its
//! own (unique bridge name and subnet, host-local leases in the temp dir), a cgroup parent of its
//! own, and a cleanup that checks nothing was left behind.

use runtime_service::{Runtime, RuntimeOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const CNI_BIN: &str = "/usr/lib/cni";
pub const BUSYBOX: &str = "localhost/busybox:1.35";

pub struct Fixture {
    /// Short, so every monitor socket path in it fits sun_path.
    pub dir: tempfile::TempDir,
    pub tokio: tokio::runtime::Runtime,
    pub bridge: String,
    /// The pods' subnet prefix, `10.99.N.`.
    pub subnet: String,
    /// `/krs-it-PID`: every pod's cgroup parent is below it.
    pub cgroup_base: String,
    pub busybox_archive: PathBuf,
}

impl Fixture {
    pub fn new() -> Result<Fixture, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err(
                "they create namespaces, mounts, bridges and containers: run as root".into(),
            );
        }
        for binary in ["runc", "crun", "catatonit"] {
            if runtime_oci::find_binary(binary).is_none() {
                return Err(format!(
                    "{binary} is missing: install the Debian package {binary}"
                ));
            }
        }
        for plugin in ["bridge", "host-local", "portmap", "loopback"] {
            if !Path::new(CNI_BIN).join(plugin).is_file() {
                return Err(format!(
                    "CNI plugin {CNI_BIN}/{plugin} is missing: install containernetworking-plugins"
                ));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("krs")
            .tempdir_in("/tmp")
            .map_err(|e| format!("temp dir: {e}"))?;
        let pid = std::process::id();
        let fixture = Fixture {
            bridge: format!("krs{}", pid % 100_000),
            subnet: format!("10.99.{}.", pid % 250),
            cgroup_base: format!("/krs-it-{pid}"),
            busybox_archive: dir.path().join("images/busybox-1.35.oci.tar"),
            tokio: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .map_err(|e| format!("tokio: {e}"))?,
            dir,
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../scripts/build-images.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(fixture.dir.path().join("images"))
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "build-images.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        fixture.write_network()?;
        Ok(fixture)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write_network(&self) -> Result<(), String> {
        let conf_dir = self.path().join("net.d");
        std::fs::create_dir_all(&conf_dir).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(self.path().join("no-net.d")).map_err(|e| e.to_string())?;
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "krs-it",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": self.path().join("ipam"),
                        "ranges": [[{"subnet": format!("{}0/24", self.subnet)}]],
                        "routes": [{"dst": "0.0.0.0/0"}]
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        });
        std::fs::write(conf_dir.join("10-krs.conflist"), conflist.to_string())
            .map_err(|e| e.to_string())
    }

    /// `<exe> serve ROOT STATE CNI_CONF_DIR SOCKET`: the runtime `name` in a process of its own.
    pub fn spawn_served(&self, name: &str, socket: &Path) -> std::process::Child {
        let options = self.options(name);
        Command::new(std::env::current_exe().expect("current exe"))
            .arg("serve")
            .args([&options.root, &options.state, &options.cni_conf_dir])
            .arg(socket)
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("spawn the served runtime")
    }

    /// Options for a runtime of its own under `name` (its own root and state).
    pub fn options(&self, name: &str) -> RuntimeOptions {
        RuntimeOptions {
            root: self.path().join(name).join("r"),
            state: self.path().join(name).join("s"),
            cni_conf_dir: self.path().join("net.d"),
            cni_bin_dirs: vec![PathBuf::from(CNI_BIN)],
            registry_config: None,
            monitor_binary: std::env::current_exe().expect("current exe"),
            ..RuntimeOptions::default()
        }
    }

    /// A runtime with the busybox image imported.
    pub fn runtime(&self, name: &str) -> Runtime {
        self.tokio.block_on(async {
            let runtime = Runtime::open(self.options(name))
                .await
                .expect("open the runtime");
            let imported = runtime
                .images()
                .import(&self.busybox_archive)
                .await
                .expect("import busybox");
            assert!(!imported.is_empty(), "the archive holds an image");
            runtime
        })
    }

    pub fn log_dir(&self, pod: &str) -> PathBuf {
        self.path().join("logs").join(pod)
    }

    /// Removes whatever a failed case left behind and says what that was: live monitors and
    /// containers (killed by PID), mounts, the bridge, cgroups.
    pub fn cleanup(&self) -> Vec<String> {
        let mut left = Vec::new();
        for state_dir in monitor_dirs(self.path()) {
            for file in ["container.pid", "monitor.pid"] {
                let pid = std::fs::read_to_string(state_dir.join(file))
                    .ok()
                    .and_then(|t| t.split_whitespace().next()?.parse::<i32>().ok());
                if let Some(pid) = pid
                    && runtime_monitor::is_alive(&state_dir)
                {
                    left.push(format!("{file} {pid} in {}", state_dir.display()));
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        for point in mounts_under(self.path()) {
            left.push(format!("mount {point}"));
            let _ = nix::mount::umount2(Path::new(&point), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let base = hierarchy
                .path()
                .join(self.cgroup_base.trim_start_matches('/'));
            let _ = kubelet_host::cgroupfs::remove_tree(&base);
        }
        left
    }
}

/// State dirs of monitors (`*/s/containers/ID`) of every runtime the cases opened.
fn monitor_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|runtime| {
            std::fs::read_dir(runtime.path().join("s/containers"))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .collect()
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4).map(String::from))
        .filter(|point| Path::new(point).starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.len()));
    found
}

/// The `serve` subcommand: opens the runtime on the given dirs and serves it until killed.
pub fn serve_main(args: &[String]) -> std::process::ExitCode {
    // A certs.d dir may follow, so critest can be pointed at this binary by hand.
    let (root, state, cni_conf_dir, socket, registry_config) = match args {
        [root, state, conf, socket] => (root, state, conf, socket, None),
        [root, state, conf, socket, registry] => (root, state, conf, socket, Some(registry.into())),
        _ => {
            eprintln!("usage: serve ROOT STATE CNI_CONF_DIR SOCKET [REGISTRY_CONFIG_DIR]");
            return std::process::ExitCode::FAILURE;
        }
    };
    let options = RuntimeOptions {
        root: root.into(),
        state: state.into(),
        cni_conf_dir: cni_conf_dir.into(),
        cni_bin_dirs: vec![PathBuf::from(CNI_BIN)],
        registry_config,
        monitor_binary: std::env::current_exe().expect("current exe"),
        ..RuntimeOptions::default()
    };
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        let runtime = Runtime::open(options).await.expect("open the runtime");
        runtime_service::serve(runtime, Path::new(socket), std::future::pending())
            .await
            .expect("serve");
    });
    std::process::ExitCode::SUCCESS
}

/// A gRPC channel on the unix socket, once it answers (at most 5 s).
pub async fn connect(socket: &Path) -> tonic::transport::Channel {
    let path = socket.to_path_buf();
    let connector = tower::service_fn(move |_: tonic::transport::Uri| {
        let path = path.clone();
        async move {
            tokio::net::UnixStream::connect(path)
                .await
                .map(hyper_util::rt::TokioIo::new)
        }
    });
    for _ in 0..250 {
        let endpoint = tonic::transport::Endpoint::from_static("http://localhost");
        if let Ok(channel) = endpoint.connect_with_connector(connector.clone()).await {
            return channel;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{} does not answer", socket.display());
}
