//! /pods, /runningpods/ and /configz.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubelet_cri::api::{ContainerFilter, PodSandboxFilter};
use kubelet_cri::api::{
    ContainerState, ContainerStateValue, PodSandboxState, PodSandboxStateValue,
};
use serde_json::{Value, json};

use crate::KubeletView;

const POD_NAME: &str = "io.kubernetes.pod.name";
const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
const POD_UID: &str = "io.kubernetes.pod.uid";
const CONTAINER_NAME: &str = "io.kubernetes.container.name";

fn pod_list(items: Vec<Pod>) -> Value {
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
}

pub(crate) async fn pods(State(view): State<Arc<dyn KubeletView>>) -> Json<Value> {
    Json(pod_list(view.pods()))
}

pub(crate) async fn configz(State(view): State<Arc<dyn KubeletView>>) -> Json<Value> {
    Json(view.configz())
}

/// The pods the runtime runs, as upstream's GetPods(false) turned into minimal API pods:
/// ready sandboxes and running containers, grouped by their pod labels.
pub(crate) async fn running_pods(
    State(view): State<Arc<dyn KubeletView>>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let runtime = view.runtime();
    let failed = |error: kubelet_cri::CriError| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot list the runtime's pods: {error}"),
        )
    };
    let sandboxes = runtime
        .list_pod_sandbox(Some(PodSandboxFilter {
            state: Some(PodSandboxStateValue {
                state: PodSandboxState::SandboxReady as i32,
            }),
            ..Default::default()
        }))
        .await
        .map_err(failed)?;
    let containers = runtime
        .list_containers(Some(ContainerFilter {
            state: Some(ContainerStateValue {
                state: ContainerState::ContainerRunning as i32,
            }),
            ..Default::default()
        }))
        .await
        .map_err(failed)?;
    let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
    for sandbox in &sandboxes {
        insert_pod(&mut pods, &sandbox.labels);
    }
    for container in &containers {
        if let Some(pod) = insert_pod(&mut pods, &container.labels) {
            let spec = pod.spec.get_or_insert_with(PodSpec::default);
            spec.containers.push(Container {
                name: container
                    .labels
                    .get(CONTAINER_NAME)
                    .cloned()
                    .unwrap_or_default(),
                image: container.image.as_ref().map(|image| image.image.clone()),
                ..Default::default()
            });
        }
    }
    Ok(Json(pod_list(pods.into_values().collect())))
}

fn insert_pod<'a>(
    pods: &'a mut BTreeMap<String, Pod>,
    labels: &std::collections::HashMap<String, String>,
) -> Option<&'a mut Pod> {
    let uid = labels.get(POD_UID)?.clone();
    Some(pods.entry(uid.clone()).or_insert_with(|| Pod {
        metadata: ObjectMeta {
            name: labels.get(POD_NAME).cloned(),
            namespace: labels.get(POD_NAMESPACE).cloned(),
            uid: Some(uid),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        ..Default::default()
    }))
}
