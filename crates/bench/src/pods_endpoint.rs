//! The kubelet's read-only `/pods` endpoint (a v1 PodList with statuses), the one place the
//! bench reads what a kubelet claims: to time when it reports a container's exit.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde::Deserialize;
use std::sync::LazyLock;
use std::time::Duration;

/// One connection pool for all polls, so each poll costs the kubelet one request, not a handshake.
static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a plain HTTP client needs no TLS setup")
});

#[derive(Debug, Deserialize)]
struct PodList {
    /// The upstream kubelet (Go) sends `"items": null` when it has no pods.
    #[serde(default)]
    items: Option<Vec<Pod>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PodsEndpointError {
    #[error("GET http://127.0.0.1:{port}/pods failed: {source}")]
    Request { port: u16, source: reqwest::Error },
    #[error("http://127.0.0.1:{port}/pods is not a PodList: {source}")]
    Decode {
        port: u16,
        source: serde_json::Error,
    },
}

pub async fn fetch(port: u16) -> Result<Vec<Pod>, PodsEndpointError> {
    let request = |source| PodsEndpointError::Request { port, source };
    let body = CLIENT
        .get(format!("http://127.0.0.1:{port}/pods"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(request)?
        .bytes()
        .await
        .map_err(request)?;
    let list: PodList = serde_json::from_slice(&body)
        .map_err(|source| PodsEndpointError::Decode { port, source })?;
    Ok(list.items.unwrap_or_default())
}

/// Whether the kubelet reports that container `container_id` of pod `full_name` terminated,
/// as its current state or as the last state of a newer container.
pub fn exit_reported(pods: &[Pod], full_name: &str, container_id: &str) -> bool {
    pods.iter()
        .filter(|pod| pod.metadata.name.as_deref() == Some(full_name))
        .filter_map(|pod| pod.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .any(|status| reports_termination(status, container_id))
}

fn reports_termination(status: &ContainerStatus, container_id: &str) -> bool {
    // Container ids are reported as <runtime>://<id>.
    let is_it = |id: Option<&String>| id.is_some_and(|id| id.ends_with(container_id));
    let current = status
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .is_some_and(|t| is_it(t.container_id.as_ref()));
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .is_some_and(|t| is_it(t.container_id.as_ref()));
    current || last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods(json: serde_json::Value) -> Vec<Pod> {
        serde_json::from_value::<PodList>(json)
            .unwrap()
            .items
            .unwrap_or_default()
    }

    fn list(state: serde_json::Value, last_state: serde_json::Value) -> Vec<Pod> {
        pods(serde_json::json!({
            "kind": "PodList", "apiVersion": "v1",
            "items": [{
                "metadata": {"name": "kb-react-0-node"},
                "status": {"containerStatuses": [{
                    "name": "main", "image": "busybox", "imageID": "", "ready": true,
                    "restartCount": 1, "state": state, "lastState": last_state
                }]}
            }]
        }))
    }

    #[test]
    fn a_restarted_container_reports_the_killed_one_as_its_last_state() {
        let pods = list(
            serde_json::json!({"running": {"startedAt": "2025-01-01T00:00:00Z"}}),
            serde_json::json!({"terminated": {"exitCode": 137, "containerID": "containerd://abc"}}),
        );
        assert!(exit_reported(&pods, "kb-react-0-node", "abc"));
        assert!(!exit_reported(&pods, "kb-react-0-node", "def"));
        assert!(!exit_reported(&pods, "other-node", "abc"));
    }

    #[test]
    fn a_terminated_current_state_counts() {
        let pods = list(
            serde_json::json!({"terminated": {"exitCode": 137, "containerID": "containerd://abc"}}),
            serde_json::json!({}),
        );
        assert!(exit_reported(&pods, "kb-react-0-node", "abc"));
    }

    #[test]
    fn an_empty_list_may_come_as_null_items() {
        let empty = serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": null});
        assert!(pods(empty).is_empty());
    }

    #[test]
    fn a_running_container_reports_no_exit() {
        let pods = list(
            serde_json::json!({"running": {"startedAt": "2025-01-01T00:00:00Z"}}),
            serde_json::json!({}),
        );
        assert!(!exit_reported(&pods, "kb-react-0-node", "abc"));
    }
}
