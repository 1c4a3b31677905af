//! /exec, /attach and /portForward (upstream server.go getExec, getAttach, getPortForward): the
//! kubelet asks the runtime for a streaming URL for the session, then proxies the client's
//! upgraded connection (SPDY/3.1 or WebSocket channel protocols) to it. And /run (getRun), which
//! runs a command to completion and answers its output.

mod proxy;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use k8s_openapi::api::core::v1::Pod;
use kubelet_cri::api::{
    AttachRequest, ContainerFilter, ContainerState, ContainerStateValue, ExecRequest,
    PodSandboxFilter, PodSandboxState, PodSandboxStateValue, PortForwardRequest,
};
use kubelet_cri::{CriError, Runtime};

use crate::KubeletView;

const POD_UID: &str = "io.kubernetes.pod.uid";
const CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// Which streams a session has (upstream remotecommand Options).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// Why no streaming URL was had.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The pod's container or sandbox is not running: a 404.
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Runtime(#[from] CriError),
}

impl IntoResponse for StreamError {
    fn into_response(self) -> Response {
        let status = match &self {
            StreamError::NotFound(_) => StatusCode::NOT_FOUND,
            StreamError::Runtime(e) if e.is_not_found() => StatusCode::NOT_FOUND,
            StreamError::Runtime(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, self.to_string()).into_response()
    }
}

pub(crate) fn routes() -> Router<Arc<dyn KubeletView>> {
    Router::new()
        .route("/exec/{namespace}/{pod}/{container}", get(exec).post(exec))
        .route(
            "/exec/{namespace}/{pod}/{uid}/{container}",
            get(exec).post(exec),
        )
        .route(
            "/attach/{namespace}/{pod}/{container}",
            get(attach).post(attach),
        )
        .route(
            "/attach/{namespace}/{pod}/{uid}/{container}",
            get(attach).post(attach),
        )
        .route("/run/{namespace}/{pod}/{container}", post(run))
        .route("/run/{namespace}/{pod}/{uid}/{container}", post(run))
        .route(
            "/portForward/{namespace}/{pod}",
            get(port_forward).post(port_forward),
        )
        .route(
            "/portForward/{namespace}/{pod}/{uid}",
            get(port_forward).post(port_forward),
        )
}

fn query(request: &Request) -> Vec<(String, String)> {
    serde_urlencoded::from_str(request.uri().query().unwrap_or("")).unwrap_or_default()
}

/// Upstream's names are input, output, error and tty, set to "1" (what the API server sends);
/// kubectl's own names (stdin=true, ...) are accepted too, for clients that talk to the kubelet
/// directly.
fn flag(query: &[(String, String)], names: [&str; 2]) -> bool {
    query
        .iter()
        .any(|(k, v)| names.contains(&k.as_str()) && (v == "1" || v == "true"))
}

pub(crate) fn stream_options(query: &[(String, String)]) -> Result<StreamOptions, String> {
    let tty = flag(query, ["tty", "tty"]);
    let options = StreamOptions {
        stdin: flag(query, ["input", "stdin"]),
        stdout: flag(query, ["output", "stdout"]),
        // A terminal has no separate stderr.
        stderr: flag(query, ["error", "stderr"]) && !tty,
        tty,
    };
    if !options.stdin && !options.stdout && !options.stderr {
        return Err("you must specify at least 1 of stdin, stdout, stderr".into());
    }
    Ok(options)
}

/// The ports of a WebSocket port-forward (upstream portforward.NewV4Options); SPDY clients
/// name their ports in stream headers instead.
pub(crate) fn forwarded_ports(query: &[(String, String)]) -> Result<Vec<i32>, String> {
    let values: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "port")
        .map(|(_, v)| v.as_str())
        .collect();
    if values.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    let ports = runtime_streaming::parse_ports(values)?;
    Ok(ports.into_iter().map(i32::from).collect())
}

fn is_websocket(request: &Request) -> bool {
    proxy::is_upgrade(request)
        && request
            .headers()
            .get(http::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The pod this kubelet runs under that name; a uid in the path must match it.
fn find_pod(view: &dyn KubeletView, params: &HashMap<String, String>) -> Result<Pod, StreamError> {
    let (namespace, name) = (&params["namespace"], &params["pod"]);
    let pod = view
        .pods()
        .into_iter()
        .find(|p| {
            p.metadata.namespace.as_ref() == Some(namespace)
                && p.metadata.name.as_ref() == Some(name)
        })
        .ok_or_else(|| StreamError::NotFound("pod does not exist".into()))?;
    if let Some(uid) = params.get("uid")
        && pod.metadata.uid.as_ref() != Some(uid)
    {
        return Err(StreamError::NotFound("pod not found".into()));
    }
    Ok(pod)
}

async fn exec(
    State(view): State<Arc<dyn KubeletView>>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let query = query(&request);
    let options = match stream_options(&query) {
        Ok(options) => options,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let command = query
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let pod = match find_pod(view.as_ref(), &params) {
        Ok(pod) => pod,
        Err(e) => return e.into_response(),
    };
    match view
        .exec(&pod, &params["container"], command, options)
        .await
    {
        Ok(url) => proxy::proxy(request, &url).await,
        Err(e) => e.into_response(),
    }
}

async fn attach(
    State(view): State<Arc<dyn KubeletView>>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let options = match stream_options(&query(&request)) {
        Ok(options) => options,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let pod = match find_pod(view.as_ref(), &params) {
        Ok(pod) => pod,
        Err(e) => return e.into_response(),
    };
    match view.attach(&pod, &params["container"], options).await {
        Ok(url) => proxy::proxy(request, &url).await,
        Err(e) => e.into_response(),
    }
}

async fn port_forward(
    State(view): State<Arc<dyn KubeletView>>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let ports = if is_websocket(&request) {
        match forwarded_ports(&query(&request)) {
            Ok(ports) => ports,
            Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
        }
    } else {
        Vec::new()
    };
    let pod = match find_pod(view.as_ref(), &params) {
        Ok(pod) => pod,
        Err(e) => return e.into_response(),
    };
    match view.port_forward(&pod, ports).await {
        Ok(url) => proxy::proxy(request, &url).await,
        Err(e) => e.into_response(),
    }
}

/// Runs `cmd` (one query parameter, split at spaces, as upstream) to completion; answers its
/// stdout then stderr, or a 500 naming the exit code.
async fn run(
    State(view): State<Arc<dyn KubeletView>>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let pod = match find_pod(view.as_ref(), &params) {
        Ok(pod) => pod,
        Err(e) => return e.into_response(),
    };
    let query = query(&request);
    let cmd = query
        .iter()
        .find(|(k, _)| k == "cmd")
        .map_or("", |(_, v)| v.as_str());
    let cmd: Vec<String> = cmd.split(' ').map(str::to_string).collect();
    let runtime = view.runtime();
    let container_id = match running_container(runtime.as_ref(), &pod, &params["container"]).await {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    // No timeout, as upstream's RunInContainer.
    let response = match runtime
        .exec_sync(&container_id, cmd.clone(), std::time::Duration::ZERO)
        .await
    {
        Ok(response) => response,
        Err(e) => return StreamError::Runtime(e).into_response(),
    };
    if response.exit_code != 0 {
        let message = format!(
            "command '{}' exited with {}: {}",
            cmd.join(" "),
            response.exit_code,
            String::from_utf8_lossy(&response.stderr)
        );
        return (StatusCode::INTERNAL_SERVER_ERROR, message).into_response();
    }
    let mut output = response.stdout;
    output.extend(response.stderr);
    ([(http::header::CONTENT_TYPE, "application/json")], output).into_response()
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// The running container `name` of `pod`, found by the CRI labels the kubelet sets.
async fn running_container(
    runtime: &dyn Runtime,
    pod: &Pod,
    name: &str,
) -> Result<String, StreamError> {
    let filter = ContainerFilter {
        state: Some(ContainerStateValue {
            state: ContainerState::ContainerRunning as i32,
        }),
        label_selector: [
            (POD_UID.to_string(), uid(pod)),
            (CONTAINER_NAME.to_string(), name.to_string()),
        ]
        .into(),
        ..Default::default()
    };
    runtime
        .list_containers(Some(filter))
        .await?
        .into_iter()
        .max_by_key(|c| c.created_at)
        .map(|c| c.id)
        .ok_or_else(|| StreamError::NotFound(format!("container not found ({name:?})")))
}

/// The runtime's exec URL for `command` in container `container` of `pod`.
pub async fn exec_url(
    runtime: &dyn Runtime,
    pod: &Pod,
    container: &str,
    command: Vec<String>,
    options: StreamOptions,
) -> Result<String, StreamError> {
    let container_id = running_container(runtime, pod, container).await?;
    let request = ExecRequest {
        container_id,
        cmd: command,
        tty: options.tty,
        stdin: options.stdin,
        stdout: options.stdout,
        stderr: options.stderr,
    };
    Ok(runtime.exec(request).await?)
}

/// The runtime's attach URL for container `container` of `pod`.
pub async fn attach_url(
    runtime: &dyn Runtime,
    pod: &Pod,
    container: &str,
    options: StreamOptions,
) -> Result<String, StreamError> {
    let container_id = running_container(runtime, pod, container).await?;
    let request = AttachRequest {
        container_id,
        stdin: options.stdin,
        tty: options.tty,
        stdout: options.stdout,
        stderr: options.stderr,
    };
    Ok(runtime.attach(request).await?)
}

/// The runtime's port-forward URL for the pod's ready sandbox (the newest one).
pub async fn port_forward_url(
    runtime: &dyn Runtime,
    pod: &Pod,
    ports: Vec<i32>,
) -> Result<String, StreamError> {
    let filter = PodSandboxFilter {
        state: Some(PodSandboxStateValue {
            state: PodSandboxState::SandboxReady as i32,
        }),
        label_selector: [(POD_UID.to_string(), uid(pod))].into(),
        ..Default::default()
    };
    let sandbox = runtime
        .list_pod_sandbox(Some(filter))
        .await?
        .into_iter()
        .max_by_key(|s| s.created_at)
        .ok_or_else(|| {
            StreamError::NotFound(format!(
                "pod not found (\"{}_{}\")",
                pod.metadata.name.as_deref().unwrap_or_default(),
                pod.metadata.namespace.as_deref().unwrap_or_default()
            ))
        })?;
    let request = PortForwardRequest {
        pod_sandbox_id: sandbox.id,
        port: ports,
    };
    Ok(runtime.port_forward(request).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn stream_options_take_upstream_and_kubectl_names() {
        assert_eq!(
            stream_options(&q(&[("input", "1"), ("output", "1"), ("error", "1")])).unwrap(),
            StreamOptions {
                stdin: true,
                stdout: true,
                stderr: true,
                tty: false
            }
        );
        assert_eq!(
            stream_options(&q(&[("stdout", "true"), ("stderr", "true"), ("tty", "1")])).unwrap(),
            StreamOptions {
                stdout: true,
                tty: true,
                ..Default::default()
            }
        );
        assert_eq!(
            stream_options(&q(&[("command", "ls"), ("output", "0")])).unwrap_err(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
    }

    #[test]
    fn websocket_ports_are_parsed_like_upstream() {
        assert_eq!(
            forwarded_ports(&q(&[("port", "80,8080"), ("port", "9000")])).unwrap(),
            vec![80, 8080, 9000]
        );
        assert_eq!(
            forwarded_ports(&q(&[])).unwrap_err(),
            "query parameter \"port\" is required"
        );
        assert!(forwarded_ports(&q(&[("port", "0")])).is_err());
        assert!(forwarded_ports(&q(&[("port", "http")])).is_err());
    }
}
