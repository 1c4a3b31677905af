//! Local pod submission (ours, upstream has none): POST /pods with a Pod manifest (YAML or JSON)
//! checks it as a static pod and writes it, one file per pod (NAMESPACE_NAME.yaml or .json),
//! into the local pods directory that the kubelet's local source watches; DELETE
//! /pods/NAMESPACE/NAME removes the file. Answers follow the API server: 201 with the pod, or a
//! metav1 Status (400 BadRequest, 404 NotFound, 409 AlreadyExists).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kubelet_sources::Origin;
use serde_json::json;
use tokio::sync::Mutex;

pub(crate) struct LocalPods {
    dir: PathBuf,
    node_name: String,
    /// One submission at a time, so two POSTs of one pod cannot both pass the existence check.
    writing: Mutex<()>,
}

impl LocalPods {
    pub(crate) fn new(dir: PathBuf, node_name: String) -> Arc<Self> {
        Arc::new(LocalPods {
            dir,
            node_name,
            writing: Mutex::new(()),
        })
    }

    fn files(&self, namespace: &str, name: &str) -> [PathBuf; 2] {
        ["yaml", "json"].map(|ext| self.dir.join(format!("{namespace}_{name}.{ext}")))
    }
}

fn status(code: StatusCode, reason: &str, message: String, name: Option<&str>) -> Response {
    let failure = code.is_client_error() || code.is_server_error();
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": if failure { "Failure" } else { "Success" },
        "code": code.as_u16(),
    });
    if !message.is_empty() {
        body["message"] = json!(message);
    }
    if !reason.is_empty() {
        body["reason"] = json!(reason);
    }
    if let Some(name) = name {
        body["details"] = json!({"name": name, "kind": "pods"});
    }
    (code, Json(body)).into_response()
}

fn internal(error: impl std::fmt::Display) -> Response {
    status(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        error.to_string(),
        None,
    )
}

pub(crate) async fn create(State(local): State<Arc<LocalPods>>, body: Bytes) -> Response {
    // The source name the local pods source gives these pods (kubelet_sources' local source),
    // so the answered pod has the UID the kubelet will run it with.
    let origin = Origin {
        source: "local",
        location: "POST /pods".into(),
    };
    let pod = match kubelet_sources::decode_pod(&body, &origin, &local.node_name) {
        Ok(pod) => pod,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", e.to_string(), None),
    };
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    // The static pod name carries the node name; the file is named as the manifest named it.
    let suffix = format!("-{}", local.node_name.to_lowercase());
    let full_name = pod.metadata.name.clone().unwrap_or_default();
    let name = full_name.strip_suffix(&suffix).unwrap_or(&full_name);
    let json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let [yaml_file, json_file] = local.files(&namespace, name);

    let _writing = local.writing.lock().await;
    for file in [&yaml_file, &json_file] {
        if tokio::fs::try_exists(file).await.unwrap_or(false) {
            return status(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("pods \"{name}\" already exists"),
                Some(name),
            );
        }
    }
    let target = if json { json_file } else { yaml_file };
    if let Err(e) = write_atomically(&local.dir, &target, &body).await {
        return internal(format!("cannot write {}: {e}", target.display()));
    }
    tracing::info!(pod = %format!("{namespace}/{name}"), file = %target.display(), "local pod submitted");
    (StatusCode::CREATED, Json(pod)).into_response()
}

/// Writes a hidden temp file (sources skip dot files) and renames it, so the watcher never reads
/// a half-written manifest.
async fn write_atomically(dir: &Path, target: &Path, data: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.tmp"));
    tokio::fs::write(&temp, data).await?;
    if let Err(e) = tokio::fs::rename(&temp, target).await {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(e);
    }
    Ok(())
}

pub(crate) async fn delete(
    State(local): State<Arc<LocalPods>>,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
) -> Response {
    let suffix = format!("-{}", local.node_name.to_lowercase());
    // Either the manifest's name or the pod's name on this node (with the node suffix).
    let mut candidates = vec![name.clone()];
    if let Some(short) = name.strip_suffix(&suffix) {
        candidates.push(short.to_string());
    }
    let _writing = local.writing.lock().await;
    for candidate in &candidates {
        for file in local.files(&namespace, candidate) {
            match tokio::fs::remove_file(&file).await {
                Ok(()) => {
                    tracing::info!(pod = %format!("{namespace}/{candidate}"), file = %file.display(), "local pod deleted");
                    return status(StatusCode::OK, "", String::new(), Some(candidate));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return internal(format!("cannot remove {}: {e}", file.display())),
            }
        }
    }
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("pods \"{name}\" not found"),
        Some(&name),
    )
}
