//! A test API server with kubectl pointed at it, for kubelets in cluster mode.

use super::{Kubelet, free_port};
use kubelet_test_apiserver::TestApiServer;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub struct Cluster {
    pub api: TestApiServer,
    /// An admin kubeconfig, for kubectl and for the kubelet.
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start() -> Self {
        Self::with(TestApiServer::start())
    }

    pub fn with(api: TestApiServer) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("admin.kubeconfig");
        if api.is_tls() {
            let (cert, key) = api.issue_client_cert("admin", &["system:masters"]);
            api.kubeconfig_with_cert(&kubeconfig, &cert, &key).unwrap();
        } else {
            api.kubeconfig(&kubeconfig).unwrap();
        }
        Cluster {
            api,
            kubeconfig,
            _dir: dir,
        }
    }

    /// A kubelet of this cluster, serving its API on a free port.
    pub fn kubelet(&self, node: &str) -> Kubelet {
        let port = free_port();
        Kubelet::new(node).with_args(&[
            &format!("--kubeconfig={}", self.kubeconfig.display()),
            &format!("--port={port}"),
            "--node-ip=127.0.0.1",
            // The test machine's disk may be fuller than the default thresholds allow.
            "--eviction-hard=memory.available<1Mi,nodefs.available<1%,imagefs.available<1%",
        ])
    }

    /// Runs kubectl; answers its stdout, or its stderr as the error.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        self.kubectl_stdin(args, None)
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        use std::io::Write;
        let mut cmd = Command::new("kubectl");
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl is installed");
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `kubectl create -f -` of a manifest.
    pub fn create(&self, manifest: &str) {
        self.kubectl_stdin(&["create", "--validate=false", "-f", "-"], Some(manifest))
            .unwrap_or_else(|e| panic!("kubectl create: {e}\n{manifest}"));
    }

    /// An object as JSON, or None when kubectl cannot get it.
    pub fn get(&self, kind: &str, name: &str, namespace: &str) -> Option<serde_json::Value> {
        let out = self
            .kubectl(&["get", kind, name, "-n", namespace, "-o", "json"])
            .ok()?;
        serde_json::from_str(&out).ok()
    }
}

/// Polls `check` every 200 ms; panics with the kubelet's log on timeout.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    kubelet: &Kubelet,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    super::wait_for(what, timeout, kubelet, || {
        let v = check();
        async move { v }
    })
    .await
}

/// A busybox pod bound to `node` by spec.nodeName, as a scheduler would have it.
pub fn bound_pod(name: &str, node: &str, script: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 2
{extra_spec}  containers:
  - name: app
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["/bin/sh", "-c", {script:?}]
"#,
        image = super::BUSYBOX
    )
}
