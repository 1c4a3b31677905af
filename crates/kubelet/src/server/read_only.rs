//! The unauthenticated read-only port (--read-only-port on --address): what upstream's
//! InstallDefaultHandlers serves there, /healthz (with its checks), /pods, /stats/summary and
//! the /metrics endpoints; nothing that runs commands, reads logs or shows the configuration.

use crate::pod_manager::PodManager;
use crate::status::StatusManager;
use axum::Router;
use k8s_openapi::List;
use k8s_openapi::api::core::v1::Pod;
use kubelet_server::KubeletView;
use std::sync::Arc;

/// The pods with the status the kubelet computed for each.
pub fn pod_list(pods: &PodManager, status: &StatusManager) -> List<Pod> {
    let items = pods
        .pods()
        .into_iter()
        .map(|mut p| {
            if let Some(s) = status.get(p.metadata.uid.as_deref().unwrap_or_default()) {
                p.status = Some(s);
            }
            p
        })
        .collect();
    List {
        items,
        ..Default::default()
    }
}

pub fn router(view: Arc<dyn KubeletView>) -> Router {
    kubelet_server::read_only_router(view)
}
