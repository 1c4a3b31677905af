//! Pod sources and their merge: the manifest directory, the manifest URL, the local pods
//! directory and the API server, each feeding one config mux that turns their pods into
//! [`PodUpdate`]s.

use k8s_openapi::api::core::v1::Pod;

/// The source names, as upstream writes them in `kubernetes.io/config.source`.
pub const FILE_SOURCE: &str = "file";
pub const HTTP_SOURCE: &str = "http";
pub const API_SOURCE: &str = "api";
/// Pods submitted to this kubelet's own HTTPS server and kept in its local pods directory. Not
/// an upstream source: its pods are static pods, as file pods are.
pub const LOCAL_SOURCE: &str = "local";

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

mod adopted_uids;
mod api_defaults;
mod api_source;
mod file_source;
mod http_source;
mod manifest;
mod mux;
mod static_pod;
mod validation;

use std::path::PathBuf;
use std::time::Duration;

pub use adopted_uids::AdoptedUids;
pub use api_defaults::pull_policy_for_image;
pub use api_source::ApiSourceConfig;
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

/// Which sources to run (the kubelet's staticPodPath, staticPodURL and friends). The default
/// runs no source.
#[derive(Debug, Clone, Default)]
pub struct SourcesConfig {
    pub node_name: String,
    /// A manifest directory or a single manifest file; `None` or empty: no file source.
    pub manifest_path: Option<PathBuf>,
    pub file_check_frequency: Duration,
    /// `None` or empty: no HTTP source.
    pub manifest_url: Option<String>,
    pub manifest_url_headers: Vec<(String, String)>,
    pub http_check_frequency: Duration,
    /// The pods bound to this node on the API server; `None`: standalone, no API source.
    pub api: Option<ApiSourceConfig>,
    /// The local pods directory, watched as the manifest directory is (same check period), its
    /// pods sent as source [`LOCAL_SOURCE`]; `None` or empty: no local source.
    pub local_pods_dir: Option<PathBuf>,
    /// UIDs of the static pods running at start, for the file and HTTP sources' manifests
    /// without `metadata.uid`.
    pub adopted_uids: AdoptedUids,
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
            cfg.adopted_uids.clone(),
            mux.source(FILE_SOURCE),
        ));
    }
    if let Some(dir) = cfg.local_pods_dir.filter(|p| !p.as_os_str().is_empty()) {
        tokio::spawn(file_source::run(
            dir,
            cfg.node_name.clone(),
            period_or_default(cfg.file_check_frequency),
            // Our own pods, never the upstream kubelet's: their content UIDs are ours already.
            AdoptedUids::default(),
            mux.source(LOCAL_SOURCE),
        ));
    }
    if let Some(api) = cfg.api {
        tokio::spawn(api_source::run(
            api,
            cfg.node_name.clone(),
            mux.source(API_SOURCE),
        ));
    }
    if let Some(url) = cfg.manifest_url.filter(|u| !u.is_empty()) {
        tokio::spawn(http_source::run(
            url,
            cfg.manifest_url_headers,
            cfg.node_name,
            period_or_default(cfg.http_check_frequency),
            cfg.adopted_uids,
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
            ..Default::default()
        });
        let update = tokio::time::timeout(Duration::from_secs(5), config.updates.recv())
            .await
            .expect("an update within 5 s")
            .expect("the mux is alive");
        assert_eq!((update.op, update.source), (PodOperation::Add, FILE_SOURCE));
        // An empty URL configures no HTTP source, so the file source alone makes all ready.
        assert!(config.ready.all_ready());
    }

    async fn next(config: &mut PodConfig) -> PodUpdate {
        tokio::time::timeout(Duration::from_secs(5), config.updates.recv())
            .await
            .expect("an update within 5 s")
            .expect("the mux is alive")
    }

    #[tokio::test]
    async fn the_local_pods_directory_is_a_static_source_of_its_own() {
        let manifests = tempfile::tempdir().unwrap();
        let local = tempfile::tempdir().unwrap();
        let manifest = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "c", "image": "x:1"}]}}"#;
        std::fs::write(manifests.path().join("web.json"), manifest).unwrap();
        let mut config = start(SourcesConfig {
            node_name: "node1".to_owned(),
            manifest_path: Some(manifests.path().to_path_buf()),
            // Far longer than the test: only inotify explains a quick update.
            file_check_frequency: Duration::from_secs(3600),
            local_pods_dir: Some(local.path().to_path_buf()),
            ..Default::default()
        });
        let from_file = next(&mut config).await;
        assert_eq!(
            (from_file.op, from_file.source),
            (PodOperation::Add, FILE_SOURCE)
        );
        tokio::time::timeout(Duration::from_secs(5), async {
            while !config.ready.all_ready() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the empty local directory counts as read");

        // As the kubelet's server writes a submitted pod: aside under a hidden name, then renamed.
        let aside = local.path().join(".web.json.tmp");
        std::fs::write(&aside, manifest).unwrap();
        std::fs::rename(&aside, local.path().join("web.json")).unwrap();
        let added = next(&mut config).await;
        assert_eq!((added.op, added.source), (PodOperation::Add, LOCAL_SOURCE));
        let pod = &added.pods[0];
        assert_eq!(pod.metadata.name.as_deref(), Some("web-node1"));
        let annotations = pod.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations[CONFIG_SOURCE_ANNOTATION], LOCAL_SOURCE);
        assert_eq!(
            Some(&annotations[CONFIG_HASH_ANNOTATION]),
            pod.metadata.uid.as_ref()
        );
        // The same manifest in another source is another pod.
        assert_ne!(pod.metadata.uid, from_file.pods[0].metadata.uid);
        let tolerations = pod.spec.as_ref().unwrap().tolerations.as_deref();
        assert_eq!(
            tolerations.map(<[_]>::len),
            Some(1),
            "static pods tolerate NoExecute"
        );

        std::fs::remove_file(local.path().join("web.json")).unwrap();
        let removed = next(&mut config).await;
        assert_eq!(
            (removed.op, removed.source),
            (PodOperation::Remove, LOCAL_SOURCE)
        );
    }
}
