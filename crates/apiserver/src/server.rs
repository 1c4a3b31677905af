//! The HTTP server and the handle tests hold: start, stop and restart the listener, reach
//! the store.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::audit::RequestRecord;
use crate::auth::{Authentication, UserInfo};
use crate::ca::{self, CaError};
use crate::cluster::{Cluster, ClusterOptions};
use crate::csr::{self, CsrSettings};
use crate::error::ApiError;
use crate::kubeconfig::{self, Credentials};
use crate::reviews::{AccessDecision, AccessReview};
use crate::store::Store;
use crate::{discovery, rest};

/// How often a watch that allows bookmarks gets one; the real server sends them about
/// once a minute, tests want them sooner.
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);

/// How long certificates signed for CSRs last at most: a year, upstream's default.
pub const DEFAULT_CSR_SIGNING_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub bookmark_interval: Duration,
    pub cluster: Arc<Cluster>,
}

impl AppState {
    /// A fresh cluster over `store`, with a new CA.
    pub fn new(
        store: Store,
        bookmark_interval: Duration,
        options: &ClusterOptions,
    ) -> Result<Self, CaError> {
        Ok(AppState {
            store,
            bookmark_interval,
            cluster: Arc::new(Cluster::new(options)?),
        })
    }
}

/// What the listener knows about a connection: the user its client certificate names.
#[derive(Clone, Default)]
pub struct ConnInfo {
    pub certificate_user: Option<UserInfo>,
}

/// The routes of the API server over `state`, behind its authentication.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/version", get(discovery::version))
        .route("/api", get(discovery::core_versions))
        .route("/api/v1", get(discovery::core_resources))
        .route("/apis", get(discovery::groups))
        .route("/apis/{group}", get(discovery::group))
        .route("/apis/{group}/{version}", get(discovery::group_resources))
        .fallback(rest::handle)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// Authenticates every request (401 with a Status when it cannot), hands the user to the
/// handlers as an extension and logs the request.
async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let certificate_user = req
        .extensions()
        .get::<ConnInfo>()
        .and_then(|c| c.certificate_user.clone());
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let authentication =
        state
            .cluster
            .auth
            .authenticate(&state.store, certificate_user.as_ref(), authorization);
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let (user, response) = match authentication {
        Authentication::User(user) => {
            req.extensions_mut().insert(user.clone());
            (Some(user), next.run(req).await)
        }
        Authentication::Unauthorized => (None, ApiError::Unauthorized.into_response()),
    };
    state.cluster.requests.record(RequestRecord {
        method,
        path,
        query,
        user,
        status: response.status().as_u16(),
    });
    response
}

/// Serves `router` over plain HTTP on `listener` until this future is dropped; dropping it
/// also closes every open connection (watches included), as a stopped API server would.
pub async fn serve(listener: TcpListener, router: Router) {
    serve_with(listener, router, None, std::sync::mpsc::channel().0).await
}

/// Serves `router` over HTTPS with `acceptor`, which may ask for client certificates.
pub async fn serve_tls(listener: TcpListener, router: Router, acceptor: TlsAcceptor) {
    serve_with(
        listener,
        router,
        Some(acceptor),
        std::sync::mpsc::channel().0,
    )
    .await
}

/// Serves until dropped. Every connection task holds a clone of `alive`, so its receiver
/// learns when the listener and all its connections are gone.
async fn serve_with(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    alive: std::sync::mpsc::Sender<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let router = router.clone();
                    let tls = tls.clone();
                    let alive = alive.clone();
                    connections.spawn(async move {
                        let _alive = alive;
                        let Some(acceptor) = tls else {
                            return serve_connection(stream, router, ConnInfo::default()).await;
                        };
                        match acceptor.accept(stream).await {
                            Ok(stream) => {
                                let certificate_user = stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|chain| chain.first())
                                    .and_then(|leaf| ca::certificate_user(leaf))
                                    .map(|(user, groups)| UserInfo { username: user, uid: String::new(), groups });
                                serve_connection(stream, router, ConnInfo { certificate_user }).await
                            }
                            Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "accepting a connection failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection<S>(io: S, router: Router, conn: ConnInfo)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router.layer(Extension(conn)));
    let served = auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// The TLS setup of an HTTPS server: a serving certificate from `ca` for 127.0.0.1, ::1 and
/// localhost, and client certificates signed by `ca` verified when given (tokens and
/// anonymous requests come without one). HTTP/1.1 only, so every client can upgrade.
pub fn tls_acceptor(ca: &ca::TestCa) -> Result<TlsAcceptor, ServerError> {
    let serving = ca.issue_serving_cert()?;
    let tls_error = |e: &dyn std::fmt::Display| ServerError::Tls(e.to_string());
    let chain = CertificateDer::pem_slice_iter(serving.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(&e))?;
    let key =
        PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes()).map_err(|e| tls_error(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).map_err(|e| tls_error(&e))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| tls_error(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| tls_error(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Why the test API server could not start or listen.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot start the test API server's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make the test CA's certificates: {0}")]
    Ca(#[from] CaError),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

/// How to start a [`TestApiServer`]: `TestApiServer::builder().tls(true).start()`.
#[derive(Debug, Clone)]
pub struct TestApiServerBuilder {
    bookmark_interval: Duration,
    options: ClusterOptions,
}

impl TestApiServerBuilder {
    /// Serve HTTPS with a serving certificate from the test CA and authenticate every request
    /// (client certificates, tokens); unauthenticated requests get 401. Off by default: plain
    /// HTTP where every request is the administrator system:unsecured.
    pub fn tls(mut self, tls: bool) -> Self {
        self.options.tls = tls;
        self
    }

    /// Over TLS, let requests without credentials through as system:anonymous
    /// (--anonymous-auth). Off by default.
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.options.allow_anonymous = allow;
        self
    }

    /// Approve kubelet client CSRs (signer kubernetes.io/kube-apiserver-client-kubelet) from
    /// system:bootstrappers and from the node itself, as kube-controller-manager's csrapprover
    /// does, so a bootstrap needs no manual step. Off by default.
    pub fn auto_approve_csrs(mut self, approve: bool) -> Self {
        self.options.csr.auto_approve = approve;
        self
    }

    /// The longest certificate the CSR signers issue (--cluster-signing-duration, default
    /// [`DEFAULT_CSR_SIGNING_DURATION`]); also the duration of CSRs without expirationSeconds.
    pub fn csr_signing_duration(mut self, duration: Duration) -> Self {
        self.options.csr.signing_duration = duration;
        self
    }

    /// How often watches that allow bookmarks get one (default [`DEFAULT_BOOKMARK_INTERVAL`]).
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }

    /// Starts the server; panics when it cannot, as a test cannot go on without it.
    pub fn start(self) -> TestApiServer {
        self.try_start().expect("the test API server starts")
    }

    pub fn try_start(self) -> Result<TestApiServer, ServerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("test-apiserver")
            .build()
            .map_err(ServerError::Runtime)?;
        let state = AppState::new(Store::new(), self.bookmark_interval, &self.options)?;
        let tls = if self.options.tls {
            Some(tls_acceptor(&state.cluster.ca)?)
        } else {
            None
        };
        runtime.spawn(csr::run_controllers(state.clone()));
        let mut server = TestApiServer {
            runtime: Some(runtime),
            state,
            tls,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            listener: Mutex::new(None),
        };
        server.addr = server.listen(server.addr)?;
        Ok(server)
    }
}

/// A running test API server on 127.0.0.1, on a runtime of its own so it serves whatever
/// the test does (blocking on kubectl, or running its own runtime).
pub struct TestApiServer {
    runtime: Option<tokio::runtime::Runtime>,
    state: AppState,
    tls: Option<TlsAcceptor>,
    addr: SocketAddr,
    listener: Mutex<Option<Listening>>,
}

/// The task serving the listener, and how to learn it and its connections are gone.
struct Listening {
    task: JoinHandle<()>,
    gone: std::sync::mpsc::Receiver<()>,
}

impl Listening {
    /// Aborts the task and waits (briefly) until its socket and connections are closed, so a
    /// request made right after is refused.
    fn stop(self) {
        self.task.abort();
        let _ = self.gone.recv_timeout(Duration::from_secs(5));
    }
}

impl TestApiServer {
    /// Starts a plain HTTP server on a random port of 127.0.0.1 with an empty cluster (its
    /// namespaces and their default service accounts). Panics when it cannot.
    pub fn start() -> Self {
        Self::try_start(DEFAULT_BOOKMARK_INTERVAL).expect("the test API server starts")
    }

    /// Starts a plain HTTP server whose watches get bookmarks every `bookmark_interval`.
    pub fn try_start(bookmark_interval: Duration) -> Result<Self, ServerError> {
        Self::builder()
            .bookmark_interval(bookmark_interval)
            .try_start()
    }

    /// Options beyond [`start`](Self::start): TLS and authentication, CSR signing.
    pub fn builder() -> TestApiServerBuilder {
        TestApiServerBuilder {
            bookmark_interval: DEFAULT_BOOKMARK_INTERVAL,
            options: ClusterOptions {
                tls: false,
                allow_anonymous: false,
                csr: CsrSettings {
                    auto_approve: false,
                    signing_duration: DEFAULT_CSR_SIGNING_DURATION,
                },
            },
        }
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives until drop")
    }

    fn listen(&self, addr: SocketAddr) -> Result<SocketAddr, ServerError> {
        let listen_error = |source| ServerError::Listen { addr, source };
        let std_listener = std::net::TcpListener::bind(addr).map_err(listen_error)?;
        std_listener.set_nonblocking(true).map_err(listen_error)?;
        let bound = std_listener.local_addr().map_err(listen_error)?;
        let router = router(self.state.clone());
        let tls = self.tls.clone();
        let (alive, gone) = std::sync::mpsc::channel();
        let task = self.runtime().spawn(async move {
            match TcpListener::from_std(std_listener) {
                Ok(listener) => serve_with(listener, router, tls, alive).await,
                Err(e) => tracing::error!(error = %e, "cannot register the listener"),
            }
        });
        if let Some(old) = self.lock_listener().replace(Listening { task, gone }) {
            old.stop();
        }
        Ok(bound)
    }

    fn lock_listener(&self) -> std::sync::MutexGuard<'_, Option<Listening>> {
        self.listener.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The base URL: http://127.0.0.1:PORT, or https://127.0.0.1:PORT with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the server speaks HTTPS and authenticates requests.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The cluster state, for tests to read and set objects directly.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Forgets the change history: watches from older versions get 410 Gone.
    pub fn compact(&self) {
        self.state.store.compact();
    }

    /// Closes the listener and every open connection; the state is kept.
    pub fn stop_listener(&self) {
        let listening = self.lock_listener().take();
        if let Some(listening) = listening {
            listening.stop();
        }
    }

    /// Listens again on the same address after [`stop_listener`](Self::stop_listener), with
    /// the same serving certificate.
    pub fn restart_listener(&self) -> Result<(), ServerError> {
        self.stop_listener();
        self.listen(self.addr).map(drop)
    }

    /// The cluster CA certificate (PEM): it signed the serving certificate, client
    /// certificates and CSRs. Made for plain HTTP servers too, so CSRs are signed there.
    pub fn ca_pem(&self) -> &str {
        self.state.cluster.ca.pem()
    }

    /// Writes [`ca_pem`](Self::ca_pem) to `path` (for --client-ca-file or a kubeconfig).
    pub fn write_ca(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.ca_pem())
    }

    /// A new key and a client certificate signed by the cluster CA for user `common_name` in
    /// groups `organizations`: (certificate PEM, PKCS#8 key PEM). Panics with more than two
    /// organizations (the most rcgen can put in one subject).
    pub fn issue_client_cert(&self, common_name: &str, organizations: &[&str]) -> (String, String) {
        let organizations: Vec<String> = organizations.iter().map(|o| o.to_string()).collect();
        let issued = self
            .state
            .cluster
            .ca
            .issue_client_cert(common_name, &organizations)
            .expect("the test CA issues the client certificate");
        (issued.cert_pem, issued.key_pem)
    }

    /// Registers a static bearer token (as in --token-auth-file) for `user` in `groups`.
    pub fn add_token(&self, token: &str, user: &str, groups: &[&str]) {
        self.state
            .cluster
            .auth
            .add_token(token, UserInfo::new(user, groups));
    }

    /// Makes `token` ("abcdef.0123456789abcdef") a valid bootstrap token by storing its Secret
    /// kube-system/bootstrap-token-ID as kubeadm does; it authenticates as
    /// system:bootstrap:ID in system:bootstrappers and `extra_groups`. Panics on a malformed token.
    pub fn add_bootstrap_token(&self, token: &str, extra_groups: &[&str]) {
        let secret = crate::auth::bootstrap_token_secret(token, extra_groups)
            .expect("a bootstrap token is [a-z0-9]{6}.[a-z0-9]{16}");
        self.store()
            .put(secret)
            .expect("the bootstrap token Secret is stored");
    }

    /// Approves the CSR `name` (adds the Approved condition); the signers then issue its
    /// certificate. Panics when there is no such CSR.
    pub fn approve_csr(&self, name: &str) {
        csr::add_condition(
            self.store(),
            name,
            "Approved",
            "TestApprove",
            "This CSR was approved by the test.",
        )
        .expect("the CSR exists");
    }

    /// Decides the answers to SubjectAccessReviews not matched by a
    /// [`deny_access`](Self::deny_access) rule (default: allow).
    pub fn set_access_policy(
        &self,
        policy: impl Fn(&AccessReview) -> AccessDecision + Send + Sync + 'static,
    ) {
        self.state.cluster.authorizer.set_policy(Arc::new(policy));
    }

    /// Makes SubjectAccessReviews for `user` doing `verb` on `resource`/`subresource`
    /// (e.g. "nodes", "proxy") answer denied; "*" matches anything, "" no subresource.
    pub fn deny_access(&self, user: &str, verb: &str, resource: &str, subresource: &str) {
        self.state
            .cluster
            .authorizer
            .deny(user, verb, resource, subresource);
    }

    /// Every SubjectAccessReview received so far, in order.
    pub fn access_reviews(&self) -> Vec<AccessReview> {
        self.state.cluster.authorizer.received()
    }

    /// Lets requests without credentials through (as system:anonymous) or not, over TLS.
    pub fn set_allow_anonymous(&self, allow: bool) {
        self.state.cluster.auth.set_anonymous(allow);
    }

    /// Every request answered so far, in order, with its authenticated user.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.cluster.requests.snapshot()
    }

    /// Forgets the requests logged so far.
    pub fn clear_requests(&self) {
        self.state.cluster.requests.clear();
    }

    /// Writes a kubeconfig whose only cluster, user and context point at this server. Over TLS
    /// the user is an administrator: a client certificate for kubernetes-admin in
    /// system:masters.
    pub fn kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        if self.is_tls() {
            let (cert, key) = self.issue_client_cert("kubernetes-admin", &["system:masters"]);
            return self.kubeconfig_with_cert(path, &cert, &key);
        }
        self.write_kubeconfig(path, Credentials::Anonymous)
    }

    /// Writes a kubeconfig that authenticates with a client certificate and key (PEM).
    pub fn kubeconfig_with_cert(
        &self,
        path: &Path,
        cert_pem: &str,
        key_pem: &str,
    ) -> std::io::Result<()> {
        self.write_kubeconfig(path, Credentials::Certificate { cert_pem, key_pem })
    }

    /// Writes a kubeconfig that authenticates with a bearer token.
    pub fn kubeconfig_with_token(&self, path: &Path, token: &str) -> std::io::Result<()> {
        self.write_kubeconfig(path, Credentials::Token(token))
    }

    /// Writes a kubeconfig for this server with `credentials`; over TLS its cluster trusts the
    /// CA.
    pub fn write_kubeconfig(
        &self,
        path: &Path,
        credentials: Credentials<'_>,
    ) -> std::io::Result<()> {
        let ca = self.is_tls().then(|| self.ca_pem());
        kubeconfig::write(path, &self.url(), ca, credentials)
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        self.stop_listener();
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime may happen inside a test's own runtime, where blocking is not allowed.
            runtime.shutdown_background();
        }
    }
}
