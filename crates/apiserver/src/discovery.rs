//! Discovery: /version, /api, /apis and the per-group-version resource lists.
//!
//! Only the legacy (unaggregated) documents are served: a client asking for aggregated
//! discovery (apidiscovery.k8s.io/v2) sees plain JSON and falls back, as against old servers.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::resources::{self, RESOURCES, Resource};
use crate::server::AppState;

pub async fn version() -> Json<Value> {
    Json(json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": format!("linux/{}", std::env::consts::ARCH),
    }))
}

pub async fn core_versions(State(_): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    }))
}

fn group_document(group: &str) -> Value {
    let versions: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

pub async fn groups() -> Json<Value> {
    let mut names: Vec<&str> = resources::groups().into_iter().map(|(g, _)| g).collect();
    names.dedup();
    let groups: Vec<Value> = names.into_iter().map(group_document).collect();
    Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
}

pub async fn group(Path(group): Path<String>) -> Response {
    if resources::groups().iter().all(|(g, _)| *g != group) {
        return ApiError::UnknownPath.into_response();
    }
    let mut doc = group_document(&group);
    doc["kind"] = "APIGroup".into();
    doc["apiVersion"] = "v1".into();
    Json(doc).into_response()
}

/// The subresources beyond status this server serves for `r`.
fn subresources(r: &Resource) -> &'static [(&'static str, &'static [&'static str])] {
    match r.kind {
        "CertificateSigningRequest" => &[("approval", &["get", "patch", "update"])],
        "ServiceAccount" => &[("token", &["create"])],
        "Pod" => &[
            ("attach", &["create", "get"]),
            ("exec", &["create", "get"]),
            ("log", &["get"]),
            ("portforward", &["create", "get"]),
        ],
        "Node" => &[("proxy", &["create", "delete", "get", "patch", "update"])],
        _ => &[],
    }
}

fn resource_entries(r: &Resource) -> Vec<Value> {
    let mut entries = vec![json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs(),
        "shortNames": r.short_names,
    })];
    for (sub, verbs) in subresources(r) {
        entries.push(json!({
            "name": format!("{}/{sub}", r.plural),
            "singularName": "",
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs,
        }));
    }
    if r.has_status {
        entries.push(json!({
            "name": format!("{}/status", r.plural),
            "singularName": "",
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    entries
}

fn resource_list(group: &str, version: &str) -> Response {
    let entries: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .flat_map(resource_entries)
        .collect();
    if entries.is_empty() {
        return ApiError::UnknownPath.into_response();
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }))
    .into_response()
}

pub async fn core_resources() -> Response {
    resource_list("", "v1")
}

pub async fn group_resources(Path((group, version)): Path<(String, String)>) -> Response {
    resource_list(&group, &version)
}
