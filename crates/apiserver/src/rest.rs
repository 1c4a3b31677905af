//! The resource handlers: get, list, watch, create, update, patch and delete.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::binding;
use crate::csr;
use crate::error::ApiError;
use crate::meta;
use crate::patch;
use crate::path::{self, Target};
use crate::proto;
use crate::proxy;
use crate::reviews;
use crate::selectors::{FieldSelector, LabelSelector, Selector};
use crate::server::AppState;
use crate::store::{DeleteOptions, UpdateScope};
use crate::watch::{self, WatchRequest};

/// The real server ends a watch after a while (--min-request-timeout, 1800 s) unless asked.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

type Params = HashMap<String, String>;

/// The largest request body read (the real server's limit is 3 MiB for most writes).
const MAX_BODY: usize = 3 * 1024 * 1024;

pub async fn handle(State(state): State<AppState>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let result = match proxy::route(uri.path()) {
        Some(target) => proxy::forward(&state, target, req).await,
        None => handle_request(&state, req).await,
    };
    match result {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(%method, %uri, error = %e, "request refused");
            e.into_response()
        }
    }
}

async fn handle_request(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let Query(params) = Query::<Params>::try_from_uri(req.uri())
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let user = req
        .extensions()
        .get::<UserInfo>()
        .cloned()
        .unwrap_or_default();
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| ApiError::BadRequest(format!("cannot read the request body: {e}")))?;
    let request = RestRequest {
        method: &parts.method,
        uri: &parts.uri,
        params: &params,
        headers: &parts.headers,
        body: &body,
        user: &user,
    };
    dispatch(state, &request)
}

/// One API request, read whole.
struct RestRequest<'a> {
    method: &'a Method,
    uri: &'a Uri,
    params: &'a Params,
    headers: &'a HeaderMap,
    body: &'a [u8],
    user: &'a UserInfo,
}

fn dispatch(state: &AppState, request: &RestRequest<'_>) -> Result<Response, ApiError> {
    let RestRequest {
        method,
        uri,
        params,
        headers,
        body,
        ..
    } = *request;
    let target = path::parse(uri.path())?;
    if target.resource.create_only {
        return review(state, &target, request);
    }
    let scope = match target.subresource.as_deref() {
        None => UpdateScope::Main,
        Some("status") if target.resource.has_status => UpdateScope::Status,
        Some("ephemeralcontainers") if target.resource.kind == "Pod" => {
            UpdateScope::EphemeralContainers
        }
        Some("binding") if target.resource.kind == "Pod" => {
            let (&Method::POST, Some(name)) = (method, target.name.as_deref()) else {
                return Err(ApiError::MethodNotAllowed);
            };
            require_json(headers)?;
            let ns = target.namespace.as_deref().unwrap_or_default();
            let answer =
                binding::bind(&state.store, target.resource, ns, name, &parse_body(body)?)?;
            return Ok((StatusCode::CREATED, Json(answer)).into_response());
        }
        Some("approval") if target.resource.kind == "CertificateSigningRequest" => {
            return approval(state, &target, request);
        }
        Some("token") if target.resource.kind == "ServiceAccount" => {
            let (&Method::POST, Some(name)) = (method, target.name.as_deref()) else {
                return Err(ApiError::MethodNotAllowed);
            };
            require_json(headers)?;
            let ns = target.namespace.as_deref().unwrap_or_default();
            let answer = reviews::token_request(state, ns, name, &parse_body(body)?)?;
            return Ok((StatusCode::CREATED, Json(answer)).into_response());
        }
        Some(_) => return Err(ApiError::UnknownPath),
    };
    let watching = target.watch_prefix
        || matches!(params.get("watch").map(String::as_str), Some("true" | "1"));
    let ns = target.namespace.clone().unwrap_or_default();
    let store = &state.store;
    let ok = |v: Value| Ok((StatusCode::OK, Json(v)).into_response());
    match (method, target.name.as_deref()) {
        (&Method::GET, _) if watching => watch(state, &target, params),
        (&Method::GET, Some(name)) => ok(store.get(target.resource, &ns, name)?),
        (&Method::GET, None) => list(state, &target, params),
        (&Method::POST, None) if scope == UpdateScope::Main => {
            require_json(headers)?;
            let mut obj = parse_body(body)?;
            check_namespace(&target, &mut obj)?;
            if target.resource.kind == "CertificateSigningRequest" {
                stamp_requester(&mut obj, request.user);
                csr::validate_create(&obj)?;
            }
            let created = store.create(target.resource, &ns, obj)?;
            Ok((StatusCode::CREATED, Json(created)).into_response())
        }
        (&Method::PUT, Some(name)) => {
            require_json(headers)?;
            let mut obj = parse_body(body)?;
            check_namespace(&target, &mut obj)?;
            ok(store.update(target.resource, &ns, name, obj, scope)?)
        }
        (&Method::PATCH, Some(name)) => {
            let kind = patch_kind(headers)?;
            let patch_doc = parse_body(body)?;
            ok(store.patch(target.resource, &ns, name, scope, |current| {
                let mut next = current.clone();
                match kind {
                    PatchKind::Merge => patch::merge_patch(&mut next, &patch_doc),
                    PatchKind::Strategic => patch::strategic_merge(&mut next, &patch_doc)?,
                }
                Ok(next)
            })?)
        }
        (&Method::DELETE, Some(name)) if scope == UpdateScope::Main => {
            let options = delete_options(params, body)?;
            let deleted = store.delete(target.resource, &ns, name, &options)?;
            if target.resource.kind == "Pod"
                || meta::at(&deleted, "metadata.deletionTimestamp").is_some()
            {
                return ok(deleted);
            }
            ok(success_status(target.resource, &deleted))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// POST of a TokenReview or SubjectAccessReview: answered, never stored.
fn review(
    state: &AppState,
    target: &Target,
    request: &RestRequest<'_>,
) -> Result<Response, ApiError> {
    if *request.method != Method::POST || target.name.is_some() {
        return Err(ApiError::MethodNotAllowed);
    }
    require_json(request.headers)?;
    let body = parse_body(request.body)?;
    let answer = match target.resource.kind {
        "TokenReview" => reviews::token_review(state, &body),
        _ => state.cluster.authorizer.review(&body),
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// GET or PUT certificatesigningrequests/NAME/approval.
fn approval(
    state: &AppState,
    target: &Target,
    request: &RestRequest<'_>,
) -> Result<Response, ApiError> {
    let name = target.name.as_deref().ok_or(ApiError::MethodNotAllowed)?;
    let object = match *request.method {
        Method::GET => state.store.get(target.resource, "", name)?,
        Method::PUT => {
            // kubectl certificate approve sends protobuf.
            let given = if content_type(request.headers) == proto::CONTENT_TYPE {
                proto::csr_approval(request.body)?
            } else {
                require_json(request.headers)?;
                parse_body(request.body)?
            };
            csr::update_approval(&state.store, name, &given)?
        }
        _ => return Err(ApiError::MethodNotAllowed),
    };
    Ok(Json(object).into_response())
}

/// A new CSR records who asked for it and starts with no status, whatever the client sent.
fn stamp_requester(csr: &mut Value, user: &UserInfo) {
    if !csr.get("spec").is_some_and(Value::is_object) {
        csr["spec"] = json!({});
    }
    csr["spec"]["username"] = user.username.clone().into();
    csr["spec"]["groups"] = json!(user.groups);
    if user.uid.is_empty() {
        drop(csr["spec"].as_object_mut().map(|s| s.remove("uid")));
    } else {
        csr["spec"]["uid"] = user.uid.clone().into();
    }
    csr["status"] = json!({});
}

/// The media type of the body, without parameters.
fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
}

/// Bodies must be JSON. Protobuf is refused with 415, on which client-go retries in JSON.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    match content_type(headers) {
        "application/json" | "" => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType {
            accepted: "application/json".into(),
        }),
    }
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not valid JSON: {e}")))
}

/// The object's namespace must be empty or the URL's, as upstream requires.
fn check_namespace(target: &Target, obj: &mut Value) -> Result<(), ApiError> {
    let Some(ns) = &target.namespace else {
        return Ok(());
    };
    match meta::namespace(obj) {
        "" => Ok(()),
        given if given == ns => Ok(()),
        _ => Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        )),
    }
}

fn selector(target: &Target, params: &Params) -> Result<Selector, ApiError> {
    let mut fields = FieldSelector::parse(
        params.get("fieldSelector").map_or("", String::as_str),
        target.resource,
    )?;
    // A watch on a named object (…/pods/NAME?watch=1) is a watch with metadata.name selected.
    if let Some(name) = &target.name {
        fields = FieldSelector::parse(
            &format!(
                "metadata.name={name},{}",
                params.get("fieldSelector").map_or("", String::as_str)
            ),
            target.resource,
        )?;
    }
    Ok(Selector {
        labels: LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str))?,
        fields,
    })
}

fn list(state: &AppState, target: &Target, params: &Params) -> Result<Response, ApiError> {
    let selector = selector(target, params)?;
    let (items, rv) = state
        .store
        .list(target.resource, target.namespace.as_deref());
    let items: Vec<Value> = items.into_iter().filter(|o| selector.matches(o)).collect();
    Ok(Json(json!({
        "kind": target.resource.list_kind(),
        "apiVersion": target.resource.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    }))
    .into_response())
}

fn watch(state: &AppState, target: &Target, params: &Params) -> Result<Response, ApiError> {
    let since = match params.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => None,
        Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!(
                "resourceVersion: Invalid value: \"{rv}\": must be a number"
            ))
        })?),
    };
    let timeout =
        match params.get("timeoutSeconds") {
            Some(t) => Duration::from_secs(t.parse().map_err(|_| {
                ApiError::BadRequest(format!("timeoutSeconds: invalid value {t:?}"))
            })?),
            None => DEFAULT_WATCH_TIMEOUT,
        };
    let request = WatchRequest {
        resource: target.resource,
        namespace: target.namespace.clone(),
        selector: selector(target, params)?,
        since,
        bookmarks: matches!(
            params.get("allowWatchBookmarks").map(String::as_str),
            Some("true" | "1")
        ),
        bookmark_interval: state.bookmark_interval,
        timeout,
    };
    Ok(watch::respond(&state.store, request))
}

enum PatchKind {
    Merge,
    Strategic,
}

fn patch_kind(headers: &HeaderMap) -> Result<PatchKind, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match content_type.split(';').next().unwrap_or_default().trim() {
        "application/merge-patch+json" => Ok(PatchKind::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
        _ => Err(ApiError::UnsupportedMediaType {
            accepted: "application/merge-patch+json, application/strategic-merge-patch+json".into(),
        }),
    }
}

/// DeleteOptions from the body (kubectl and client-go send them there) or the query.
fn delete_options(params: &Params, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_body(body)?
    };
    let grace = match params.get("gracePeriodSeconds") {
        Some(g) => Some(g.parse::<i64>().map_err(|_| {
            ApiError::BadRequest(format!("gracePeriodSeconds: invalid value {g:?}"))
        })?),
        None => body.get("gracePeriodSeconds").and_then(Value::as_i64),
    };
    let precondition = |field: &str| {
        body.get("preconditions")
            .and_then(|p| p.get(field))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok(DeleteOptions {
        grace_period_seconds: grace,
        precondition_uid: precondition("uid"),
        precondition_resource_version: precondition("resourceVersion"),
    })
}

/// The Status a DELETE answers with for kinds that do not return the deleted object.
fn success_status(resource: &crate::resources::Resource, deleted: &Value) -> Value {
    let mut details = json!({
        "name": meta::name(deleted),
        "kind": resource.plural,
        "uid": meta::str_at(deleted, "metadata.uid").unwrap_or_default(),
    });
    if !resource.group.is_empty() {
        details["group"] = resource.group.into();
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}
