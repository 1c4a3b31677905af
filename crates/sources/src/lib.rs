//! Pod sources and their merge: the manifest directory, the manifest URL, and (later) the API
//! server, each sending full snapshots into one config mux that turns them into [`PodUpdate`]s.

use k8s_openapi::api::core::v1::Pod;

/// The source names, as upstream writes them in `kubernetes.io/config.source`.
pub const FILE_SOURCE: &str = "file";
pub const HTTP_SOURCE: &str = "http";
pub const API_SOURCE: &str = "api";

/// What happened to the pods of one update (upstream's kubetypes.PodOperation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodOperation {
    /// Pods new to the kubelet.
    Add,
    /// Pods whose spec or metadata changed.
    Update,
    /// Pods gone from their source: stop them and forget them.
    Remove,
    /// Pods the API server marked for graceful deletion.
    Delete,
    /// Pods whose status changed only: reconcile, no spec change.
    Reconcile,
}

/// One change from the mux: an operation on some pods of one source.
#[derive(Debug, Clone)]
pub struct PodUpdate {
    pub op: PodOperation,
    pub source: &'static str,
    pub pods: Vec<Pod>,
}

mod api_defaults;
mod file_source;
mod http_source;
mod manifest;
mod mux;
mod quantity;
mod static_pod;
mod validation;

use std::path::PathBuf;
use std::time::Duration;

pub use api_defaults::pull_policy_for_image;
pub use file_source::{FileError, read_manifests};
pub use http_source::HttpSourceError;
pub use manifest::{ManifestError, decode_pod, decode_pods};
pub use mux::{Mux, SourceSender, SourcesReady};
pub use static_pod::{
    CONFIG_HASH_ANNOTATION, CONFIG_MIRROR_ANNOTATION, CONFIG_SEEN_ANNOTATION,
    CONFIG_SOURCE_ANNOTATION, Origin,
};
pub use validation::{FieldError, FieldErrorKind, FieldErrors};

/// Upstream's default for both check periods, used when a period is zero.
const DEFAULT_CHECK_FREQUENCY: Duration = Duration::from_secs(20);

/// Which sources to run (the kubelet's staticPodPath, staticPodURL and friends).
#[derive(Debug, Clone)]
pub struct SourcesConfig {
    pub node_name: String,
    /// A manifest directory or a single manifest file; `None` or empty: no file source.
    pub manifest_path: Option<PathBuf>,
    pub file_check_frequency: Duration,
    /// `None` or empty: no HTTP source.
    pub manifest_url: Option<String>,
    pub manifest_url_headers: Vec<(String, String)>,
    pub http_check_frequency: Duration,
}

/// The merged pod configuration: the update stream, readiness, and the mux to add sources to.
pub struct PodConfig {
    pub updates: tokio::sync::mpsc::UnboundedReceiver<PodUpdate>,
    pub ready: SourcesReady,
    pub mux: Mux,
}

/// Spawns the configured sources on the current tokio runtime.
pub fn start(cfg: SourcesConfig) -> PodConfig {
    let (mux, updates) = Mux::new();
    if let Some(path) = cfg.manifest_path.filter(|p| !p.as_os_str().is_empty()) {
        tokio::spawn(file_source::run(
            path,
            cfg.node_name.clone(),
            period_or_default(cfg.file_check_frequency),
            mux.source(FILE_SOURCE),
        ));
    }
    if let Some(url) = cfg.manifest_url.filter(|u| !u.is_empty()) {
        tokio::spawn(http_source::run(
            url,
            cfg.manifest_url_headers,
            cfg.node_name,
            period_or_default(cfg.http_check_frequency),
            mux.source(HTTP_SOURCE),
        ));
    }
    PodConfig {
        updates,
        ready: mux.ready(),
        mux,
    }
}

fn period_or_default(period: Duration) -> Duration {
    if period.is_zero() {
        DEFAULT_CHECK_FREQUENCY
    } else {
        period
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn start_runs_the_configured_sources_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("web.json"),
            r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                "spec": {"containers": [{"name": "c", "image": "x:1"}]}}"#,
        )
        .unwrap();
        let mut config = start(SourcesConfig {
            node_name: "node1".to_owned(),
            manifest_path: Some(dir.path().to_path_buf()),
            file_check_frequency: Duration::ZERO,
            manifest_url: Some(String::new()),
            manifest_url_headers: Vec::new(),
            http_check_frequency: Duration::ZERO,
        });
        let update = tokio::time::timeout(Duration::from_secs(5), config.updates.recv())
            .await
            .expect("an update within 5 s")
            .expect("the mux is alive");
        assert_eq!((update.op, update.source), (PodOperation::Add, FILE_SOURCE));
        // An empty URL configures no HTTP source, so the file source alone makes all ready.
        assert!(config.ready.all_ready());
    }
}
