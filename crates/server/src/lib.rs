//! The kubelet's HTTPS server (upstream pkg/kubelet/server): health, pods, configz, logs,
//! metrics, stats and the exec/attach/portForward streams, behind authentication (client
//! certificate, TokenReview-checked bearer token, anonymous) and authorization (AlwaysAllow or
//! SubjectAccessReview webhook).
//!
//! [`serve`] listens with rustls on the kubelet port; [`router`] is the bare set of endpoints;
//! [`read_only_router`] the subset upstream serves on the unauthenticated read-only port.

mod auth;
mod container_logs;
mod error;
mod healthz;
mod host_logs;
mod listener;
mod local_pods;
mod metrics;
mod pods;
mod streaming;
mod tls;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{delete, get};
use k8s_openapi::api::core::v1::Pod;

pub use auth::{AccessReviewer, ReviewError, Reviews, TokenReviewer, User};
pub use error::ServerError;
pub use kubelet_config::AuthorizationMode;
pub use streaming::{StreamError, StreamOptions, attach_url, exec_url, port_forward_url};

/// The Prometheus endpoints the kubelet serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsPath {
    /// /metrics: the kubelet's own metrics.
    Kubelet,
    /// /metrics/probes: prober_probe_total.
    Probes,
    /// /metrics/resource: what metrics-server scrapes.
    Resource,
    /// /metrics/cadvisor: the container_* series dashboards use.
    Cadvisor,
}

/// What the server reads from the running kubelet.
#[async_trait::async_trait]
pub trait KubeletView: Send + Sync + 'static {
    fn node_name(&self) -> String;
    /// The pods this kubelet runs, with their current status (a v1 PodList's items).
    fn pods(&self) -> Vec<k8s_openapi::api::core::v1::Pod>;
    fn runtime(&self) -> Arc<dyn kubelet_cri::Runtime>;
    /// The sync loop health for /healthz/syncloop.
    fn sync_loop_healthy(&self) -> Result<(), String>;
    /// The resolved configuration as upstream /configz shows it: {"kubeletconfig": {...}} .
    fn configz(&self) -> serde_json::Value;
    /// The Prometheus text of a metrics endpoint; `None` when the kubelet does not serve it.
    async fn metrics(&self, _path: MetricsPath) -> Option<String> {
        None
    }
    /// The /stats/summary JSON; `None` when the kubelet does not serve it.
    async fn stats_summary(&self) -> Option<Result<serde_json::Value, String>> {
        None
    }
    /// The runtime's streaming URL for `command` in the running container `container` of `pod`
    /// (one of [`Self::pods`]). By default the container is found by its CRI labels.
    async fn exec(
        &self,
        pod: &Pod,
        container: &str,
        command: Vec<String>,
        options: StreamOptions,
    ) -> Result<String, StreamError> {
        exec_url(self.runtime().as_ref(), pod, container, command, options).await
    }
    /// The runtime's streaming URL to attach to the running container `container` of `pod`.
    async fn attach(
        &self,
        pod: &Pod,
        container: &str,
        options: StreamOptions,
    ) -> Result<String, StreamError> {
        attach_url(self.runtime().as_ref(), pod, container, options).await
    }
    /// The runtime's streaming URL to forward `ports` (empty for SPDY, whose streams name
    /// them) to the sandbox of `pod`.
    async fn port_forward(&self, pod: &Pod, ports: Vec<i32>) -> Result<String, StreamError> {
        port_forward_url(self.runtime().as_ref(), pod, ports).await
    }
}

/// How the authenticated kubelet port is served.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub address: IpAddr,
    pub port: u16,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    /// Where the self-signed serving certificate is kept when no files are given.
    pub cert_dir: PathBuf,
    /// The node's IPs, added to a generated certificate's names.
    pub node_ips: Vec<IpAddr>,
    pub client_ca_file: Option<PathBuf>,
    pub anonymous_auth: bool,
    pub authorization_mode: AuthorizationMode,
    /// Upstream's version names (VersionTLS12, ...).
    pub tls_min_version: Option<String>,
    /// Upstream's (Go) cipher suite names.
    pub tls_cipher_suites: Vec<String>,
    /// The directory /logs/ serves: /var/log; tests point it elsewhere.
    pub log_dir: PathBuf,
    /// --authentication-token-webhook: bearer tokens are checked with a TokenReview.
    pub authentication_webhook: bool,
    /// --authentication-token-webhook-cache-ttl (2m): how long a token's verdict is kept.
    pub authentication_webhook_cache_ttl: Duration,
    /// --authorization-webhook-cache-authorized-ttl (5m).
    pub authorization_webhook_cache_authorized_ttl: Duration,
    /// --authorization-webhook-cache-unauthorized-ttl (30s).
    pub authorization_webhook_cache_unauthorized_ttl: Duration,
    /// Who answers TokenReviews and SubjectAccessReviews: [`Reviews::from_client`] with the
    /// API server's client. Needed by the token webhook and by Webhook authorization.
    pub reviews: Option<Reviews>,
    /// Where POST /pods writes submitted pods (ours, off when `None`).
    pub local_pods_dir: Option<PathBuf>,
    /// Serves the certificate it resolves (serverTLSBootstrap's, which rotates) instead of the
    /// files or a self-signed one.
    pub cert_resolver: Option<Arc<dyn rustls::server::ResolvesServerCert>>,
}

/// Upstream's defaults of the webhook cache TTLs.
pub const DEFAULT_AUTHENTICATION_CACHE_TTL: Duration = Duration::from_secs(120);
pub const DEFAULT_AUTHORIZED_CACHE_TTL: Duration = Duration::from_secs(300);
pub const DEFAULT_UNAUTHORIZED_CACHE_TTL: Duration = Duration::from_secs(30);

/// Binds the kubelet port and serves it until the returned task is aborted.
pub async fn serve(
    cfg: ServerConfig,
    view: Arc<dyn KubeletView>,
) -> Result<tokio::task::JoinHandle<()>, ServerError> {
    let node_name = view.node_name();
    let auth = Arc::new(auth::Auth::new(&cfg, node_name.clone())?);
    let tls = tls::server_config(&cfg, &node_name)?;
    let mut app = router(view, cfg.log_dir.clone());
    if let Some(dir) = &cfg.local_pods_dir {
        app = app.merge(local_pods_router(dir.clone(), node_name));
    }
    let app = app.layer(axum::middleware::from_fn_with_state(auth, auth::filter));
    listener::start(cfg.address, cfg.port, tls, app).await
}

/// POST /pods and DELETE /pods/{namespace}/{name}, writing manifests into `dir`.
fn local_pods_router(dir: PathBuf, node_name: String) -> Router {
    Router::new()
        .route("/pods", axum::routing::post(local_pods::create))
        .route("/pods/{namespace}/{name}", delete(local_pods::delete))
        .with_state(local_pods::LocalPods::new(dir, node_name))
}

/// What upstream serves on the read-only port (InstallDefaultHandlers): health, pods, stats
/// and metrics; nothing that runs commands, reads logs or shows the configuration.
pub fn read_only_router(view: Arc<dyn KubeletView>) -> Router {
    default_routes().with_state(view)
}

fn default_routes() -> Router<Arc<dyn KubeletView>> {
    Router::new()
        .route("/healthz", get(healthz::all))
        .route("/healthz/{check}", get(healthz::one))
        .route("/pods", get(pods::pods))
        .route("/pods/", get(pods::pods))
        .route("/metrics", get(metrics::kubelet))
        .route("/metrics/probes", get(metrics::probes))
        .route("/metrics/resource", get(metrics::resource))
        .route("/metrics/cadvisor", get(metrics::cadvisor))
        .route("/stats/summary", get(metrics::summary))
}

/// The endpoints of the kubelet port, without TLS or authentication.
pub fn router(view: Arc<dyn KubeletView>, log_dir: PathBuf) -> Router {
    default_routes()
        .route("/runningpods/", get(pods::running_pods))
        .route("/configz", get(pods::configz))
        .merge(streaming::routes())
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs::handle),
        )
        .with_state(view)
        .merge(host_logs::router(log_dir))
}
