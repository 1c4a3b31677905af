//! The unauthenticated read-only port (--read-only-port on --address): /healthz and /pods, the
//! PodList of the pods this kubelet runs with their current status, as upstream serves it.

use super::healthz::{self, Health};
use crate::pod_manager::PodManager;
use crate::status::StatusManager;
use axum::Json;
use axum::Router;
use axum::routing::get;
use k8s_openapi::List;
use k8s_openapi::api::core::v1::Pod;
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

pub fn router(health: Health, pods: PodManager, status: Arc<StatusManager>) -> Router {
    healthz::router(health).route(
        "/pods",
        get(move || {
            let (pods, status) = (pods.clone(), status.clone());
            async move { Json(pod_list(&pods, &status)) }
        }),
    )
}
