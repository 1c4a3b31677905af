//! ContainerStatus and ListContainers.

use crate::filters::{Filter, Subject};
use crate::records::{ContainerPhase, ContainerRecord};
use crate::{Inner, ServiceError};
use k8s_cri::v1::{
    Container, ContainerFilter, ContainerResources, ContainerState, ContainerStatus,
    ContainerStatusResponse,
};
use std::collections::HashMap;

pub(crate) fn cri_state(phase: ContainerPhase) -> ContainerState {
    match phase {
        // Not yet a container anyone can act on.
        ContainerPhase::Creating => ContainerState::ContainerUnknown,
        ContainerPhase::Created => ContainerState::ContainerCreated,
        ContainerPhase::Running => ContainerState::ContainerRunning,
        ContainerPhase::Exited => ContainerState::ContainerExited,
    }
}

pub(crate) fn to_cri_status(r: &ContainerRecord) -> ContainerStatus {
    ContainerStatus {
        id: r.id.clone(),
        metadata: r.config.metadata.clone(),
        state: cri_state(r.phase) as i32,
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
        exit_code: r.exit_code,
        image: r.config.image.clone(),
        image_ref: r.image_ref.clone(),
        reason: r.reason.clone(),
        message: r.message.clone(),
        labels: r.config.labels.clone(),
        annotations: r.config.annotations.clone(),
        mounts: r.config.mounts.clone(),
        log_path: r.log_path.clone(),
        resources: r
            .config
            .linux
            .as_ref()
            .and_then(|l| l.resources.clone())
            .map(|linux| ContainerResources {
                linux: Some(linux),
                windows: None,
            }),
        image_id: r.image_id.clone(),
        user: None,
    }
}

fn to_cri_container(r: &ContainerRecord) -> Container {
    Container {
        id: r.id.clone(),
        pod_sandbox_id: r.sandbox_id.clone(),
        metadata: r.config.metadata.clone(),
        image: r.config.image.clone(),
        image_ref: r.image_ref.clone(),
        state: cri_state(r.phase) as i32,
        created_at: r.created_at,
        labels: r.config.labels.clone(),
        annotations: r.config.annotations.clone(),
        image_id: r.image_id.clone(),
    }
}

/// ContainerStatus; verbose adds `info`: the record and the bundle and monitor dirs as JSON.
pub(crate) fn status(
    inner: &Inner,
    id: &str,
    verbose: bool,
) -> Result<ContainerStatusResponse, ServiceError> {
    let record = inner.containers.find(id)?.get();
    let mut info = HashMap::new();
    if verbose {
        let details = serde_json::json!({
            "pid": record.pid,
            "sandboxID": record.sandbox_id,
            "runtimeHandler": record.runtime_handler,
            "bundle": inner.layout.container_dir(&record.id),
            "monitorDir": inner.layout.monitor_dir(&record.id),
            "record": record,
        });
        info.insert("info".to_string(), details.to_string());
    }
    Ok(ContainerStatusResponse {
        status: Some(to_cri_status(&record)),
        info,
    })
}

pub(crate) fn list(inner: &Inner, filter: Option<&ContainerFilter>) -> Vec<Container> {
    let filter = Filter::from(filter);
    inner
        .containers
        .snapshot()
        .iter()
        .filter(|r| {
            filter.matches(&Subject {
                id: &r.id,
                state: cri_state(r.phase) as i32,
                sandbox_id: &r.sandbox_id,
                labels: &r.config.labels,
            })
        })
        .map(to_cri_container)
        .collect()
}
