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
