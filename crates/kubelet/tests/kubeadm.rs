//! Issue 13, item 2: the kubelet as kubeadm runs it. A node joins the real kube-apiserver
//! through TLS bootstrap with exactly kubeadm's files: the bootstrap kubeconfig with a bootstrap
//! token, `config.yaml` and `kubeadm-flags.env` of v1.28 and v1.32 (crates/config/testdata/kubeadm,
//! from kubeadm's source), turned into a command line by kubeadm's drop-in
//! (packaging/10-kubeadm.conf) as systemd would, `--kubeconfig` not existing yet. There is no
//! controller manager: the harness approves the CSR and signs it with the cluster CA.
//!
//! The files' `/etc/kubernetes` and `/var/lib/kubelet` live in a temporary root. What a test on a
//! shared machine must change goes in `/etc/default/kubelet`'s KUBELET_EXTRA_ARGS, the
//! administrator's file, which the drop-in puts last: the root, cert and log-link dirs, free
//! ports, the test cgroup root, and `--cgroup-driver=cgroupfs` over kubeadm's `systemd`, since
//! systemd is not PID 1 here (the systemd driver is covered in the Debian guest of
//! scripts/vm/). The CRI socket in kubeadm-flags.env is the test's containerd, as kubeadm writes
//! whatever `criSocket` says.

mod support;

use kubelet_testkit::apiserver::RealApiServer;
use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::wait_until;

/// kubeadm's default token format; its id is the user's name suffix.
const TOKEN: &str = "abcdef.0123456789abcdef";
/// The group kubeadm gives the tokens of `kubeadm token create` (auth-extra-groups).
const TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
const START: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_v1_28_kubeadm_node_joins_through_tls_bootstrap() {
    joins("v1.28", "kubeadm-v1-28").await;
}

#[tokio::test]
async fn a_v1_32_kubeadm_node_joins_through_tls_bootstrap() {
    joins("v1.32", "kubeadm-v1-32").await;
}

async fn joins(release: &str, node: &str) {
    let _serial = support::serial().await;
    let api = RealApiServer::builder().sign_csrs(true).start();
    api.add_bootstrap_token(TOKEN, &[TOKEN_GROUP]);
    let runtime = kubelet_testkit::containerd();
    let tmp = runtime.temp_dir(node);
    let root = tmp.path();
    let files = KubeadmFiles::write(root, release, &api, runtime.endpoint());
    std::fs::write(
        root.join("etc/default/kubelet"),
        format!(
            "KUBELET_EXTRA_ARGS=\"--root-dir={root} --cert-dir={root}/pki \
             --container-log-symlink-dir={root}/containers --cgroup-root={cgroups} \
             --cgroup-driver=cgroupfs --healthz-port={healthz} --port={port} \
             --node-ip=127.0.0.1 \
             --eviction-hard=memory.available<1Mi,nodefs.available<1%,imagefs.available<1% \
             -v=2\"\n",
            root = root.join("var/lib/kubelet").display(),
            cgroups = runtime.cgroup_root(),
            healthz = support::free_port(),
            port = support::free_port(),
        ),
    )
    .unwrap();
    let args = drop_in_command(root);
    assert_eq!(args[0], "/usr/bin/kubelet", "{args:?}");
    assert!(
        !files.kubeconfig.exists(),
        "a fresh join has no kubelet.conf"
    );

    let notify_path = root.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_nonblocking(true).unwrap();
    let log = root.join("kubelet.log");
    let mut kubelet = Process::start(&args[1..], &notify_path, &log);

    let kubectl = api.kubectl();
    let get = |args: &[&str]| -> Option<serde_json::Value> {
        serde_json::from_str(&kubectl.run(args).ok()?).ok()
    };
    let csr = wait_until("the kubelet's CSR", START, &log, || {
        let list = get(&["get", "csr", "-o", "json"]);
        async move { list?["items"].as_array()?.first().cloned() }
    })
    .await;
    assert_eq!(
        csr["spec"]["signerName"],
        "kubernetes.io/kube-apiserver-client-kubelet"
    );
    assert_eq!(csr["spec"]["username"], "system:bootstrap:abcdef");
    let groups: Vec<&str> = csr["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g.as_str())
        .collect();
    assert!(groups.contains(&TOKEN_GROUP), "{groups:?}");

    wait_until("the node Ready", START, &log, || {
        let node = get(&["get", "node", node, "-o", "json"]);
        async move {
            let ready = node?["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            ready.then_some(())
        }
    })
    .await;
    assert!(
        get(&["get", "lease", node, "-n", "kube-node-lease", "-o", "json"]).is_some(),
        "no Lease for {node}"
    );

    // The kubeconfig kubeadm's drop-in names now exists and uses the rotated certificate file,
    // and the node's requests were made as system:node:NODE.
    let kubeconfig = std::fs::read_to_string(&files.kubeconfig).unwrap();
    let current = root.join("var/lib/kubelet/pki/kubelet-client-current.pem");
    assert!(
        kubeconfig.contains(&current.display().to_string()),
        "{kubeconfig}"
    );
    assert!(current.exists());
    let node_user = format!("system:node:{node}");
    let users: Vec<String> = api.audit().into_iter().map(|r| r.user).collect();
    assert!(users.contains(&node_user), "{users:?}");

    // Type=notify: READY=1 arrived once the kubelet served, STOPPING=1 when it stops.
    let messages = datagrams(&notify);
    assert!(
        messages.iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "{messages:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("flag --pod-infra-container-image has no effect"),
        "{text}"
    );
    for refused in ["unknown field", "not supported yet"] {
        assert!(!text.contains(refused), "{refused}:\n{text}");
    }
    kubelet.stop();
    let messages = datagrams(&notify);
    assert!(
        messages.contains(&"STOPPING=1\n".to_string()),
        "{messages:?}"
    );
}

/// What `kubeadm join` leaves on a node, under `root`.
struct KubeadmFiles {
    kubeconfig: PathBuf,
}

impl KubeadmFiles {
    fn write(root: &Path, release: &str, api: &RealApiServer, cri: &str) -> Self {
        let etc = root.join("etc/kubernetes");
        let lib = root.join("var/lib/kubelet");
        for dir in [
            etc.join("pki"),
            etc.join("manifests"),
            lib.clone(),
            root.join("etc/default"),
        ] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(etc.join("pki/ca.crt"), api.ca_pem()).unwrap();
        std::fs::write(
            etc.join("bootstrap-kubelet.conf"),
            bootstrap_kubeconfig(&api.url(), api.ca_pem()),
        )
        .unwrap();
        let testdata = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config/testdata/kubeadm")
            .join(release);
        let read = |name: &str| std::fs::read_to_string(testdata.join(name)).unwrap();
        std::fs::write(lib.join("config.yaml"), under(root, &read("config.yaml"))).unwrap();
        let flags = read("kubeadm-flags.env");
        let containerd = "unix:///var/run/containerd/containerd.sock";
        assert!(flags.contains(containerd), "{flags}");
        std::fs::write(
            lib.join("kubeadm-flags.env"),
            flags.replace(containerd, cri),
        )
        .unwrap();
        KubeadmFiles {
            kubeconfig: etc.join("kubelet.conf"),
        }
    }
}

/// `text` with kubeadm's directories moved under `root`.
fn under(root: &Path, text: &str) -> String {
    let root = root.display();
    text.replace("/etc/kubernetes/", &format!("{root}/etc/kubernetes/"))
        .replace("/var/lib/kubelet/", &format!("{root}/var/lib/kubelet/"))
        .replace(
            "/etc/default/kubelet",
            &format!("{root}/etc/default/kubelet"),
        )
}

/// As kubeadm's `CreateWithToken`: cluster "kubernetes", user "tls-bootstrap-token-user", the CA
/// embedded.
fn bootstrap_kubeconfig(server: &str, ca_pem: &str) -> String {
    let ca = base64(ca_pem.as_bytes());
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: kubernetes\n\
         contexts:\n- context:\n    cluster: kubernetes\n    user: tls-bootstrap-token-user\n  name: tls-bootstrap-token-user@kubernetes\n\
         current-context: tls-bootstrap-token-user@kubernetes\nkind: Config\npreferences: {{}}\n\
         users:\n- name: tls-bootstrap-token-user\n  user:\n    token: {TOKEN}\n"
    )
}

fn base64(bytes: &[u8]) -> String {
    let mut child = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("coreutils' base64");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), bytes).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// The command line systemd runs for kubelet.service under kubeadm's drop-in
/// (packaging/10-kubeadm.conf), with its files under `root`: `Environment=` and
/// `EnvironmentFile=` (a leading `-` for optional files) set variables, the last `ExecStart=`
/// wins, and an unbraced `$VAR` becomes its value's whitespace-separated words.
fn drop_in_command(root: &Path) -> Vec<String> {
    let drop_in = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/10-kubeadm.conf"),
    )
    .unwrap();
    let mut vars = HashMap::new();
    let mut exec = None;
    for line in under(root, &drop_in).lines() {
        if let Some(assignment) = line.strip_prefix("Environment=") {
            let (k, v) = assignment.trim_matches('"').split_once('=').unwrap();
            vars.insert(k.to_string(), v.to_string());
        } else if let Some(file) = line.strip_prefix("EnvironmentFile=") {
            let (optional, file) = match file.strip_prefix('-') {
                Some(file) => (true, file),
                None => (false, file),
            };
            match std::fs::read_to_string(file) {
                Ok(text) => {
                    for l in text.lines().filter(|l| !l.starts_with('#')) {
                        if let Some((k, v)) = l.split_once('=') {
                            vars.insert(k.to_string(), v.trim_matches('"').to_string());
                        }
                    }
                }
                Err(e) => assert!(optional, "EnvironmentFile {file}: {e}"),
            }
        } else if let Some(command) = line.strip_prefix("ExecStart=") {
            exec = Some(command.to_string());
        }
    }
    let exec = exec.expect("an ExecStart= line");
    assert!(!exec.is_empty(), "the drop-in's last ExecStart= is empty");
    exec.split_whitespace()
        .flat_map(|word| match word.strip_prefix('$') {
            Some(var) => vars
                .get(var)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            None => vec![word.to_string()],
        })
        .collect()
}

/// Every datagram waiting on the notification socket.
fn datagrams(socket: &UnixDatagram) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

/// Our kubelet binary in systemd's place: `NOTIFY_SOCKET` set, output to a log.
struct Process(Option<Child>);

impl Process {
    fn start(args: &[String], notify_socket: &Path, log: &Path) -> Self {
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_kubelet"))
            .args(args)
            .env("NOTIFY_SOCKET", notify_socket)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn the kubelet binary");
        Process(Some(child))
    }

    /// SIGTERM by PID, as systemd stops it, and waits (SIGKILL after 10 s).
    fn stop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..200 {
            if child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}
