//! A control plane with kubectl pointed at it, for kubelets in cluster mode. Two back ends run
//! the same tests: the project's test API server and the upstream kube-apiserver on etcd
//! (Node,RBAC authorization and NodeRestriction on, as a real cluster runs it).

use super::{Kubelet, free_port};
use kubelet_test_apiserver::TestApiServer;
use kubelet_testkit::apiserver::{Credentials, RealApiServer};
use kubelet_testkit::kubectl::Kubectl;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Each case, written once as `async fn case(backend: Backend)`, becomes a module with one test
/// per back end: `case::test_apiserver` and `case::kube_apiserver`.
#[macro_export]
macro_rules! against_both_api_servers {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn test_apiserver() {
                super::$case($crate::support::cluster::Backend::Test).await
            }

            #[tokio::test]
            async fn kube_apiserver() {
                super::$case($crate::support::cluster::Backend::Real).await
            }
        }
    )*};
}

/// Which API server a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The project's test API server (crates/apiserver).
    Test,
    /// The upstream kube-apiserver v1.28.4 with etcd.
    Real,
}

/// One request an API server answered.
#[derive(Debug)]
pub struct Request {
    pub user: String,
    /// The HTTP method on the test back end, the API verb (get, list, patch...) on the real one.
    pub verb: String,
    pub uri: String,
    pub status: u16,
    /// Why it was refused, where the server says.
    pub message: String,
}

pub enum Api {
    Test(TestApiServer),
    Real(RealApiServer),
}

pub struct Cluster {
    pub api: Api,
    /// An admin kubeconfig (system:masters), for kubectl.
    pub kubeconfig: PathBuf,
    kubectl: Kubectl,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start(backend: Backend) -> Self {
        Self::with(match backend {
            Backend::Test => Api::Test(TestApiServer::builder().tls(true).start()),
            Backend::Real => Api::Real(RealApiServer::start()),
        })
    }

    /// A cluster that approves and signs CSRs, as kube-controller-manager would.
    pub fn signing_csrs(backend: Backend) -> Self {
        Self::with(match backend {
            Backend::Test => Api::Test(
                TestApiServer::builder()
                    .tls(true)
                    .auto_approve_csrs(true)
                    .start(),
            ),
            Backend::Real => Api::Real(RealApiServer::builder().sign_csrs(true).start()),
        })
    }

    fn with(api: Api) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("admin.kubeconfig");
        let (cert_pem, key_pem) = api.issue_client_cert("kubernetes-admin", &["system:masters"]);
        api.write_kubeconfig(
            &kubeconfig,
            Credentials::Certificate {
                cert_pem: &cert_pem,
                key_pem: &key_pem,
            },
        );
        Cluster {
            api,
            kubectl: Kubectl::new(&kubeconfig),
            kubeconfig,
            _dir: dir,
        }
    }

    /// The project's test API server, for tests that reach into it.
    ///
    /// # Panics
    /// On the real back end.
    pub fn test_api(&self) -> &TestApiServer {
        match &self.api {
            Api::Test(api) => api,
            Api::Real(_) => panic!("this test needs the test API server"),
        }
    }

    /// Writes the cluster CA (PEM) to `path`, for a kubelet's --client-ca-file.
    pub fn write_ca(&self, path: &Path) {
        let ca = match &self.api {
            Api::Test(api) => api.ca_pem(),
            Api::Real(api) => api.ca_pem(),
        };
        std::fs::write(path, ca).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// A new user with a bearer token: (user name, token). An `allowed` user may use every
    /// kubelet API (RBAC's system:kubelet-api-admin on the real back end); SubjectAccessReviews
    /// for any other are denied.
    pub fn kubelet_api_user(&self, name: &str, allowed: bool) -> (String, String) {
        match &self.api {
            Api::Test(api) => {
                let token = format!("{name}-token");
                api.add_token(&token, name, &[]);
                if !allowed {
                    api.deny_access(name, "*", "*", "*");
                }
                (name.to_string(), token)
            }
            Api::Real(_) => {
                let run = |args: &[&str]| {
                    self.kubectl(args)
                        .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
                };
                run(&["create", "serviceaccount", name]);
                if allowed {
                    run(&[
                        "create",
                        "clusterrolebinding",
                        name,
                        "--clusterrole=system:kubelet-api-admin",
                        &format!("--serviceaccount=default:{name}"),
                    ]);
                }
                let token = run(&["create", "token", name]).trim().to_string();
                (format!("system:serviceaccount:default:{name}"), token)
            }
        }
    }

    /// A kubelet of this cluster on 127.0.0.1, serving its API on a free port, with a client
    /// certificate for system:node:NODE in system:nodes as a real node has.
    pub fn kubelet(&self, node: &str) -> Kubelet {
        self.kubelet_at(node, "127.0.0.1")
    }

    /// A kubelet whose node reports `ip` as its InternalIP: the API server's node proxy
    /// refuses loopback addresses.
    pub fn kubelet_at(&self, node: &str, ip: &str) -> Kubelet {
        let port = free_port();
        let k = Kubelet::new(node);
        let kubeconfig = k.dir.join("kubelet.kubeconfig");
        let (cert_pem, key_pem) = self
            .api
            .issue_client_cert(&format!("system:node:{node}"), &["system:nodes"]);
        self.api.write_kubeconfig(
            &kubeconfig,
            Credentials::Certificate {
                cert_pem: &cert_pem,
                key_pem: &key_pem,
            },
        );
        k.with_args(&[
            &format!("--kubeconfig={}", kubeconfig.display()),
            &format!("--port={port}"),
            &format!("--node-ip={ip}"),
            // The test machine's disk may be fuller than the default thresholds allow.
            "--eviction-hard=memory.available<1Mi,nodefs.available<1%,imagefs.available<1%",
        ])
    }

    /// Writes a kubeconfig that authenticates with the bootstrap token `token`, which is made
    /// valid first.
    pub fn bootstrap_kubeconfig(&self, path: &Path, token: &str) {
        match &self.api {
            Api::Test(api) => api.add_bootstrap_token(token, &[]),
            Api::Real(api) => api.add_bootstrap_token(token, &[]),
        }
        self.api.write_kubeconfig(path, Credentials::Token(token));
    }

    /// The requests answered so far, oldest first (on the real back end those of nodes and
    /// bootstrapping kubelets, from its audit log).
    pub fn requests(&self) -> Vec<Request> {
        match &self.api {
            Api::Test(api) => api
                .requests()
                .into_iter()
                .map(|r| Request {
                    user: r.user.map(|u| u.username).unwrap_or_default(),
                    verb: r.method,
                    uri: if r.query.is_empty() {
                        r.path
                    } else {
                        format!("{}?{}", r.path, r.query)
                    },
                    status: r.status,
                    message: String::new(),
                })
                .collect(),
            Api::Real(api) => api
                .audit()
                .into_iter()
                .map(|r| Request {
                    user: r.user,
                    verb: r.verb,
                    uri: r.uri,
                    status: r.code,
                    message: r.message,
                })
                .collect(),
        }
    }

    /// Takes the API server away: nothing answers on its port, its state is kept.
    pub fn stop_api(&self) {
        match &self.api {
            Api::Test(api) => api.stop_listener(),
            Api::Real(api) => api.stop(),
        }
    }

    /// Brings the API server back on the same port.
    pub fn restart_api(&self) {
        match &self.api {
            Api::Test(api) => api.restart_listener().unwrap(),
            Api::Real(api) => api.restart(),
        }
    }

    /// Forgets the change history: watches from older resourceVersions get 410 Gone (on the
    /// real back end once the server restarts and its watch cache starts afresh).
    pub fn compact(&self) {
        match &self.api {
            Api::Test(api) => api.compact(),
            Api::Real(api) => api.compact(),
        }
    }

    /// Runs kubectl; answers its stdout, or its stderr as the error.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        self.kubectl.run(args)
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        self.kubectl.run_stdin(args, stdin)
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

    /// The events about the object `name` in the default namespace, as the API returns them;
    /// None when kubectl cannot list them.
    pub fn events_about(&self, name: &str) -> Option<Vec<serde_json::Value>> {
        let selector = format!("--field-selector=involvedObject.name={name}");
        let out = self
            .kubectl(&["get", "events", &selector, "-o", "json"])
            .ok()?;
        let mut list: serde_json::Value = serde_json::from_str(&out).ok()?;
        match list["items"].take() {
            serde_json::Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The (reason, message) of each event about the object `name`.
    pub fn event_reasons(&self, name: &str) -> Option<Vec<(String, String)>> {
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        Some(
            self.events_about(name)?
                .iter()
                .map(|e| (text(&e["reason"]), text(&e["message"])))
                .collect(),
        )
    }

    /// The first event about the object `name` with `reason`.
    pub fn event(&self, name: &str, reason: &str) -> Option<serde_json::Value> {
        self.events_about(name)?
            .into_iter()
            .find(|e| e["reason"] == reason)
    }
}

impl Api {
    fn issue_client_cert(&self, user: &str, groups: &[&str]) -> (String, String) {
        match self {
            Api::Test(api) => api.issue_client_cert(user, groups),
            Api::Real(api) => api.issue_client_cert(user, groups),
        }
    }

    fn write_kubeconfig(&self, path: &Path, credentials: Credentials<'_>) {
        let written = match self {
            Api::Test(api) => api.write_kubeconfig(path, credentials),
            Api::Real(api) => api.write_kubeconfig(path, credentials),
        };
        written.unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

/// This machine's address on its default route, which the API server may proxy to (unlike
/// 127.0.0.1); connecting a UDP socket sends nothing.
///
/// # Panics
/// When the machine has no default route.
pub fn host_ip() -> String {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("203.0.113.1:9")
        .and_then(|()| socket.local_addr())
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|e| {
            panic!("this test needs a non-loopback address on a default route: {e}")
        })
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
