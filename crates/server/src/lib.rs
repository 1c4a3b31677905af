//! The kubelet's HTTPS server (upstream pkg/kubelet/server): health, pods, configz and logs,
//! behind client-certificate or anonymous authentication and AlwaysAllow authorization.
//!
//! [`serve`] listens with rustls on the kubelet port; [`router`] is the bare set of endpoints,
//! also mounted (without authentication) on the read-only port.

mod auth;
mod container_logs;
mod error;
mod healthz;
mod host_logs;
mod listener;
mod metrics;
mod pods;
mod tls;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;

pub use error::ServerError;
pub use kubelet_config::AuthorizationMode;

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
}

/// Binds the kubelet port and serves it until the returned task is aborted.
pub async fn serve(
    cfg: ServerConfig,
    view: Arc<dyn KubeletView>,
) -> Result<tokio::task::JoinHandle<()>, ServerError> {
    if cfg.authorization_mode == AuthorizationMode::Webhook {
        return Err(ServerError::WebhookAuthorization);
    }
    let tls = tls::server_config(&cfg, &view.node_name())?;
    let app = router(view, cfg.log_dir.clone()).layer(axum::middleware::from_fn_with_state(
        cfg.anonymous_auth,
        auth::require_user,
    ));
    listener::start(cfg.address, cfg.port, tls, app).await
}

/// The endpoints, without TLS or authentication.
pub fn router(view: Arc<dyn KubeletView>, log_dir: PathBuf) -> Router {
    Router::new()
        .route("/healthz", get(healthz::all))
        .route("/healthz/{check}", get(healthz::one))
        .route("/pods", get(pods::pods))
        .route("/pods/", get(pods::pods))
        .route("/runningpods/", get(pods::running_pods))
        .route("/configz", get(pods::configz))
        .route("/metrics", get(metrics::kubelet))
        .route("/metrics/probes", get(metrics::probes))
        .route("/metrics/resource", get(metrics::resource))
        .route("/metrics/cadvisor", get(metrics::cadvisor))
        .route("/stats/summary", get(metrics::summary))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs::handle),
        )
        .with_state(view)
        .merge(host_logs::router(log_dir))
}
