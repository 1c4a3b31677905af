//! PodSandboxStatus and ListPodSandbox.

use super::namespace_options;
use crate::container;
use crate::filters::{Filter, Subject};
use crate::records::{SandboxPhase, SandboxRecord};
use crate::{Inner, ServiceError, now_ns};
use k8s_cri::v1::{
    LinuxPodSandboxStatus, Namespace, PodIp, PodSandbox, PodSandboxFilter, PodSandboxNetworkStatus,
    PodSandboxState, PodSandboxStatus, PodSandboxStatusResponse,
};
use std::collections::HashMap;

fn cri_state(phase: SandboxPhase) -> PodSandboxState {
    match phase {
        SandboxPhase::Ready => PodSandboxState::SandboxReady,
        SandboxPhase::Creating | SandboxPhase::NotReady => PodSandboxState::SandboxNotready,
    }
}

pub(crate) fn to_cri_status(r: &SandboxRecord) -> PodSandboxStatus {
    let ips = r
        .network
        .as_ref()
        .map(|n| n.ips.clone())
        .unwrap_or_default();
    PodSandboxStatus {
        id: r.id.clone(),
        metadata: r.config.metadata.clone(),
        state: cri_state(r.phase) as i32,
        created_at: r.created_at,
        network: Some(PodSandboxNetworkStatus {
            ip: ips.first().cloned().unwrap_or_default(),
            additional_ips: ips
                .iter()
                .skip(1)
                .map(|ip| PodIp { ip: ip.clone() })
                .collect(),
        }),
        linux: Some(LinuxPodSandboxStatus {
            namespaces: Some(Namespace {
                options: namespace_options(&r.config).cloned(),
            }),
        }),
        labels: r.config.labels.clone(),
        annotations: r.config.annotations.clone(),
        runtime_handler: r.runtime_handler.clone(),
    }
}

/// PodSandboxStatus with its containers' statuses; verbose adds `info`: the record (network
/// namespace path, files, init) as JSON.
pub(crate) fn status(
    inner: &Inner,
    id: &str,
    verbose: bool,
) -> Result<PodSandboxStatusResponse, ServiceError> {
    let record = inner.sandboxes.find(id)?.get();
    let mut info = HashMap::new();
    if verbose {
        let details = serde_json::json!({
            "netNamespacePath": record.namespaces.net,
            "record": record,
        });
        info.insert("info".to_string(), details.to_string());
    }
    Ok(PodSandboxStatusResponse {
        status: Some(to_cri_status(&record)),
        info,
        containers_statuses: container::of_sandbox(inner, &record.id)
            .iter()
            .map(|c| container::to_cri_status(&c.get()))
            .collect(),
        timestamp: now_ns(),
    })
}

pub(crate) fn list(inner: &Inner, filter: Option<&PodSandboxFilter>) -> Vec<PodSandbox> {
    let filter = Filter::from(filter);
    inner
        .sandboxes
        .snapshot()
        .iter()
        .filter(|r| {
            filter.matches(&Subject {
                id: &r.id,
                state: cri_state(r.phase) as i32,
                sandbox_id: "",
                labels: &r.config.labels,
            })
        })
        .map(|r| PodSandbox {
            id: r.id.clone(),
            metadata: r.config.metadata.clone(),
            state: cri_state(r.phase) as i32,
            created_at: r.created_at,
            labels: r.config.labels.clone(),
            annotations: r.config.annotations.clone(),
            runtime_handler: r.runtime_handler.clone(),
        })
        .collect()
}
