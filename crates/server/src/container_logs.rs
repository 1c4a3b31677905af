//! /containerLogs/NS/POD/CONTAINER: a container's log read from its CRI log file, with
//! upstream's query parameters, validation and error messages.

mod cri_format;
mod options;
mod reader;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Pod;
use kubelet_cri::api::{Container, ContainerFilter};

use crate::KubeletView;
use options::LogOptions;

pub(crate) async fn handle(
    State(view): State<Arc<dyn KubeletView>>,
    Path((namespace, pod_name, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let options = match LogOptions::parse(query.as_deref().unwrap_or("")) {
        Ok(options) => options,
        Err(error) => return error.into_response(),
    };
    let pods = view.pods();
    let Some(pod) = pods.iter().find(|pod| {
        pod.metadata.namespace.as_deref() == Some(namespace.as_str())
            && pod.metadata.name.as_deref() == Some(pod_name.as_str())
    }) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("pod {pod_name:?} does not exist"),
        );
    };
    if !in_spec(pod, &container) {
        return error(
            StatusCode::NOT_FOUND,
            format!("container {container:?} not found in pod {pod_name:?}"),
        );
    }
    let runtime = view.runtime();
    let instance = match pick_instance(&*runtime, pod, &container, options.previous).await {
        Ok(instance) => instance,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let status = match runtime.container_status(&instance.id).await {
        Ok(status) => status,
        Err(cause) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("failed to get container status {:?}: {cause}", instance.id),
            );
        }
    };
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    tokio::spawn(reader::stream(
        runtime,
        instance.id,
        status.log_path.into(),
        options,
        sender,
    ));
    (
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver)),
    )
        .into_response()
}

fn error(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

fn in_spec(pod: &Pod, container: &str) -> bool {
    let Some(spec) = &pod.spec else { return false };
    spec.containers.iter().any(|c| c.name == container)
        || spec
            .init_containers
            .iter()
            .flatten()
            .any(|c| c.name == container)
        || spec
            .ephemeral_containers
            .iter()
            .flatten()
            .any(|c| c.name == container)
}

/// Whether the pod status shows the container waiting, e.g. in CrashLoopBackOff: its newest
/// instance is then the last terminated one, as in upstream's lastTerminationState.
fn waiting_reason(pod: &Pod, container: &str) -> Option<String> {
    let status = pod.status.as_ref()?;
    let all = status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .chain(status.ephemeral_container_statuses.iter().flatten());
    all.filter(|s| s.name == container)
        .find_map(|s| s.state.as_ref()?.waiting.as_ref())
        .map(|waiting| waiting.reason.clone().unwrap_or_default())
}

/// The CRI container whose log is asked for: the newest instance, or with `previous` the one
/// before it, found by the pod's CRI labels.
async fn pick_instance(
    runtime: &dyn kubelet_cri::Runtime,
    pod: &Pod,
    container: &str,
    previous: bool,
) -> Result<Container, String> {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let labels = [
        (
            "io.kubernetes.pod.namespace",
            pod.metadata.namespace.clone(),
        ),
        ("io.kubernetes.pod.name", Some(pod_name.clone())),
        ("io.kubernetes.pod.uid", pod.metadata.uid.clone()),
        ("io.kubernetes.container.name", Some(container.to_string())),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((key.to_string(), value?)))
    .collect();
    let mut instances = runtime
        .list_containers(Some(ContainerFilter {
            label_selector: labels,
            ..Default::default()
        }))
        .await
        .map_err(|cause| format!("failed to list the containers of pod {pod_name:?}: {cause}"))?;
    instances.sort_by_key(|c| {
        (
            std::cmp::Reverse(c.metadata.as_ref().map_or(0, |m| m.attempt)),
            std::cmp::Reverse(c.created_at),
        )
    });
    let waiting = waiting_reason(pod, container);
    let mut instances = instances.into_iter();
    if previous {
        // While the container waits to restart, its newest instance is the previous one.
        if waiting.is_none() {
            instances.next();
        }
        return instances.next().ok_or_else(|| {
            format!("previous terminated container {container:?} in pod {pod_name:?} not found")
        });
    }
    instances.next().ok_or_else(|| {
        format!(
            "container {container:?} in pod {pod_name:?} is waiting to start: {}",
            waiting.unwrap_or_else(|| "ContainerCreating".into())
        )
    })
}
