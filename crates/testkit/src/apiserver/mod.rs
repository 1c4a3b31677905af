//! The upstream kube-apiserver (v1.28.4, from `../shared/tools/get kube-apiserver`) on a private
//! etcd, set up as a real cluster runs it: TLS with client certificates from one CA,
//! `--authorization-mode=Node,RBAC` and the NodeRestriction admission plugin, so a kubelet
//! given [`RealApiServer::node_kubeconfig`] is held to exactly what a real node may do.
//!
//! There is no controller manager: the harness creates the default service accounts and the
//! kube-root-ca.crt ConfigMap (so the ServiceAccount admission plugin stays on and pods get
//! their kube-api-access volume as in a real cluster), and, when asked, approves and signs CSRs
//! itself ([`RealApiServerBuilder::sign_csrs`]).
//!
//! Tests never skip: a missing kube-apiserver or etcd is a panic naming what is missing. Both
//! processes are stopped by their PID when the server is dropped, and the temp dir removed.

mod audit;
mod csr_signer;
mod daemon;
mod etcd;
mod pki;

pub use audit::AuditRecord;
pub use kubelet_test_apiserver::kubeconfig::Credentials;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kubelet_test_apiserver::ca::{CaError, TestCa};
use kubelet_test_apiserver::kubeconfig;

use crate::free_port;
use crate::kubectl::Kubectl;
use csr_signer::CsrSigner;
use daemon::Daemon;
use etcd::Etcd;
use pki::{Pki, PkiError};

/// Where a path to kube-apiserver may be given instead of `../shared/tools/get`.
pub const KUBE_APISERVER_VAR: &str = "KUBELET_TEST_KUBE_APISERVER";
/// How long kube-apiserver may take to answer /readyz with "ok" (a few seconds here).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The Service ClusterIP range, as kubeadm's default.
const SERVICE_CIDR: &str = "10.96.0.0/12";

#[derive(Debug, thiserror::Error)]
pub enum RealApiServerError {
    #[error("cluster tests against the real API server need {what}, which is missing: {hint}")]
    Missing { what: &'static str, hint: String },
    #[error("{what} did not become ready; the end of its log:\n{log}")]
    NotReady { what: &'static str, log: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("etcd: {0}")]
    Etcd(String),
    #[error("kubectl: {0}")]
    Kubectl(String),
}

/// Options of [`RealApiServer`].
#[derive(Default)]
pub struct RealApiServerBuilder {
    sign_csrs: bool,
}

impl RealApiServerBuilder {
    /// Approves every CSR and signs the approved ones, as kube-controller-manager's csrapproving
    /// and csrsigning controllers would.
    pub fn sign_csrs(mut self, sign: bool) -> Self {
        self.sign_csrs = sign;
        self
    }

    /// # Panics
    /// When kube-apiserver or etcd is missing or does not start, naming what went wrong.
    pub fn start(self) -> RealApiServer {
        self.try_start()
            .unwrap_or_else(|e| panic!("the real kube-apiserver does not start: {e}"))
    }

    pub fn try_start(self) -> Result<RealApiServer, RealApiServerError> {
        let binary = kube_apiserver()?;
        require_etcd()?;
        let dir = tempfile::Builder::new()
            .prefix("kube-apiserver-")
            .tempdir()?;
        let ca = Arc::new(TestCa::generate()?);
        let pki = Pki::write(&ca, dir.path())?;
        let etcd = Etcd::start(dir.path())?;
        let port = free_port();
        let audit_policy = dir.path().join("audit-policy.yaml");
        std::fs::write(&audit_policy, audit::POLICY)?;
        let args = apiserver_args(&pki, &etcd, port, dir.path(), &audit_policy);
        let admin = dir.path().join("admin.kubeconfig");
        let admin_cert = ca.issue_client_cert("kubernetes-admin", &["system:masters".into()])?;
        kubeconfig::write(
            &admin,
            &format!("https://127.0.0.1:{port}"),
            Some(ca.pem()),
            Credentials::Certificate {
                cert_pem: &admin_cert.cert_pem,
                key_pem: &admin_cert.key_pem,
            },
        )?;
        let mut server = RealApiServer {
            signer: None,
            apiserver: Mutex::new(None),
            etcd,
            ca,
            binary,
            args,
            port,
            admin: Kubectl::new(&admin),
            dir,
        };
        server.launch()?;
        server.create_controller_objects()?;
        if self.sign_csrs {
            server.signer = Some(CsrSigner::start(server.ca.clone(), server.admin.clone()));
        }
        Ok(server)
    }
}

/// A kube-apiserver and its etcd, both ours alone.
pub struct RealApiServer {
    // Fields drop in order: the signer, then kube-apiserver, etcd, and last their files.
    signer: Option<CsrSigner>,
    apiserver: Mutex<Option<Daemon>>,
    etcd: Etcd,
    ca: Arc<TestCa>,
    binary: PathBuf,
    args: Vec<String>,
    port: u16,
    admin: Kubectl,
    dir: tempfile::TempDir,
}

impl RealApiServer {
    /// Starts one without CSR signing; see [`Self::builder`].
    pub fn start() -> Self {
        Self::builder().start()
    }

    pub fn builder() -> RealApiServerBuilder {
        RealApiServerBuilder::default()
    }

    /// https://127.0.0.1:PORT
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The cluster CA (PEM): it signed the serving certificate and every client certificate.
    pub fn ca_pem(&self) -> &str {
        self.ca.pem()
    }

    /// kubectl as kubernetes-admin (system:masters).
    pub fn kubectl(&self) -> &Kubectl {
        &self.admin
    }

    /// A new key and client certificate for user `common_name` in `groups`:
    /// (certificate PEM, key PEM).
    ///
    /// # Panics
    /// With more than two groups (the most the CA puts in one subject).
    pub fn issue_client_cert(&self, common_name: &str, groups: &[&str]) -> (String, String) {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let issued = self
            .ca
            .issue_client_cert(common_name, &groups)
            .expect("the CA issues a client certificate");
        (issued.cert_pem, issued.key_pem)
    }

    /// Writes a kubeconfig for this server that trusts its CA.
    pub fn write_kubeconfig(
        &self,
        path: &Path,
        credentials: Credentials<'_>,
    ) -> std::io::Result<()> {
        kubeconfig::write(path, &self.url(), Some(self.ca_pem()), credentials)
    }

    /// Writes the kubeconfig of node `node`: a client certificate for system:node:NODE in
    /// system:nodes, exactly as a real node gets, so the Node authorizer and NodeRestriction
    /// apply to it.
    pub fn node_kubeconfig(&self, path: &Path, node: &str) -> std::io::Result<()> {
        let (cert_pem, key_pem) =
            self.issue_client_cert(&format!("system:node:{node}"), &["system:nodes"]);
        self.write_kubeconfig(
            path,
            Credentials::Certificate {
                cert_pem: &cert_pem,
                key_pem: &key_pem,
            },
        )
    }

    /// Makes `token` ("abcdef.0123456789abcdef") a bootstrap token as kubeadm does: its Secret
    /// in kube-system. Panics on a malformed token or when kubectl fails.
    pub fn add_bootstrap_token(&self, token: &str, extra_groups: &[&str]) {
        let secret = kubelet_test_apiserver::bootstrap_token_secret(token, extra_groups)
            .expect("a bootstrap token is [a-z0-9]{6}.[a-z0-9]{16}");
        self.admin
            .run_stdin(&["create", "-f", "-"], Some(&secret.to_string()))
            .unwrap_or_else(|e| panic!("creating the bootstrap token's Secret: {e}"));
    }

    /// Stops kube-apiserver (by its PID); etcd keeps the state.
    pub fn stop(&self) {
        if let Some(mut daemon) = self.lock_apiserver().take() {
            daemon.stop();
        }
    }

    /// Starts kube-apiserver again on the same port, after [`Self::stop`], and waits until
    /// it is ready. Panics when it does not get ready.
    pub fn restart(&self) {
        self.stop();
        self.launch()
            .unwrap_or_else(|e| panic!("the real kube-apiserver does not restart: {e}"));
    }

    /// Compacts etcd's history: after a restart, watches from older resourceVersions get
    /// 410 Gone. Panics when etcd does not answer.
    pub fn compact(&self) {
        self.etcd
            .compact()
            .unwrap_or_else(|e| panic!("compacting etcd: {e}"));
    }

    /// The audit log's records of requests by nodes and bootstrapping kubelets, oldest first.
    pub fn audit(&self) -> Vec<AuditRecord> {
        audit::read(&self.audit_log())
    }

    fn audit_log(&self) -> PathBuf {
        audit_log(self.dir.path())
    }

    fn lock_apiserver(&self) -> std::sync::MutexGuard<'_, Option<Daemon>> {
        self.apiserver.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the kube-apiserver process and waits until /readyz answers "ok".
    fn launch(&self) -> Result<(), RealApiServerError> {
        let mut command = Command::new(&self.binary);
        command.args(&self.args);
        let mut daemon = Daemon::spawn(
            "kube-apiserver",
            command,
            &self.dir.path().join("kube-apiserver.log"),
        )?;
        let deadline = Instant::now() + READY_TIMEOUT;
        while self.admin.run(&["get", "--raw", "/readyz"]).as_deref() != Ok("ok") {
            if !daemon.is_running() || Instant::now() > deadline {
                return Err(RealApiServerError::NotReady {
                    what: daemon.name(),
                    log: daemon.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        *self.lock_apiserver() = Some(daemon);
        Ok(())
    }

    /// What kube-controller-manager would create and the kubelet's pods rely on: the default
    /// service accounts and the kube-root-ca.crt ConfigMap; and kubeadm's binding that lets
    /// bootstrap tokens create CSRs.
    fn create_controller_objects(&self) -> Result<(), RealApiServerError> {
        let ca = serde_json::to_string(self.ca_pem()).expect("a string serializes");
        let mut objects = String::new();
        for namespace in ["default", "kube-system"] {
            objects.push_str(&format!(
                "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: {namespace}\n---\n\
                 apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kube-root-ca.crt\n  namespace: {namespace}\n\
                 data:\n  ca.crt: {ca}\n---\n"
            ));
        }
        objects.push_str(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: kubeadm:kubelet-bootstrap\n\
             roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: system:node-bootstrapper\n\
             subjects:\n- apiGroup: rbac.authorization.k8s.io\n  kind: Group\n  name: system:bootstrappers\n",
        );
        self.admin
            .run_stdin(&["create", "-f", "-"], Some(&objects))
            .map(drop)
            .map_err(RealApiServerError::Kubectl)
    }
}

fn audit_log(dir: &Path) -> PathBuf {
    dir.join("audit.log")
}

fn apiserver_args(
    pki: &Pki,
    etcd: &Etcd,
    port: u16,
    dir: &Path,
    audit_policy: &Path,
) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    [
        format!("--etcd-servers={}", etcd.url()),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        format!("--tls-cert-file={}", path(&pki.serving_cert)),
        format!("--tls-private-key-file={}", path(&pki.serving_key)),
        format!("--client-ca-file={}", path(&pki.ca)),
        format!(
            "--service-account-key-file={}",
            path(&pki.service_account_public_key)
        ),
        format!(
            "--service-account-signing-key-file={}",
            path(&pki.service_account_key)
        ),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        "--authorization-mode=Node,RBAC".into(),
        "--enable-admission-plugins=NodeRestriction".into(),
        "--enable-bootstrap-token-auth=true".into(),
        "--allow-privileged=true".into(),
        // Loopback advertise addresses are refused by the endpoints reconciler.
        "--endpoint-reconciler-type=none".into(),
        format!(
            "--kubelet-client-certificate={}",
            path(&pki.kubelet_client_cert)
        ),
        format!("--kubelet-client-key={}", path(&pki.kubelet_client_key)),
        // Test nodes' host names do not resolve; their InternalIP (127.0.0.1) does.
        "--kubelet-preferred-address-types=InternalIP,Hostname".into(),
        // Sidecar init containers are alpha in 1.28.
        "--feature-gates=SidecarContainers=true".into(),
        format!("--audit-policy-file={}", path(audit_policy)),
        format!("--audit-log-path={}", path(&audit_log(dir))),
        "--profiling=false".into(),
    ]
    .into()
}

/// The kube-apiserver binary: [`KUBE_APISERVER_VAR`], or what `../shared/tools/get` unpacks.
fn kube_apiserver() -> Result<PathBuf, RealApiServerError> {
    if let Ok(path) = std::env::var(KUBE_APISERVER_VAR) {
        return Ok(PathBuf::from(path));
    }
    let get = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/get");
    let missing = |hint: String| RealApiServerError::Missing {
        what: "kube-apiserver",
        hint,
    };
    let out = Command::new(&get)
        .arg("kube-apiserver")
        .output()
        .map_err(|e| {
            missing(format!(
                "{} cannot run ({e}); set {KUBE_APISERVER_VAR} to a kube-apiserver v1.28 binary",
                get.display()
            ))
        })?;
    if !out.status.success() {
        return Err(missing(format!(
            "{} kube-apiserver failed: {}",
            get.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn require_etcd() -> Result<(), RealApiServerError> {
    if crate::preflight::on_path("etcd") {
        return Ok(());
    }
    Err(RealApiServerError::Missing {
        what: "etcd",
        hint: "install Debian's etcd-server package (scripts/install-deps.sh does)".into(),
    })
}
