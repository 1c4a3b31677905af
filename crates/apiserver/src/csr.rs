//! CertificateSigningRequests beyond storage: the /approval subresource, and what
//! kube-controller-manager does with them: the csrapprover (kubelet client certificates, when
//! enabled) and the signers for kubernetes.io/kube-apiserver-client-kubelet,
//! kubernetes.io/kubelet-serving and kubernetes.io/kube-apiserver-client.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::ca::ParsedRequest;
use crate::error::ApiError;
use crate::meta;
use crate::resources::{self, Resource};
use crate::server::AppState;
use crate::store::{EventType, Store, UpdateScope};

pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// The shortest spec.expirationSeconds the API accepts.
const MIN_EXPIRATION_SECONDS: i64 = 600;

pub fn resource() -> &'static Resource {
    resources::find("certificates.k8s.io", "v1", "certificatesigningrequests")
        .expect("certificatesigningrequests are served")
}

/// Create-time validation of the fields a signer relies on.
pub fn validate_create(csr: &Value) -> Result<(), ApiError> {
    let invalid = |cause: String| ApiError::Invalid {
        kind: "CertificateSigningRequest".into(),
        name: meta::name(csr).to_string(),
        cause,
    };
    if meta::str_at(csr, "spec.signerName").is_none_or(str::is_empty) {
        return Err(invalid("spec.signerName: Required value".into()));
    }
    let request = meta::str_at(csr, "spec.request").unwrap_or_default();
    let pem = STANDARD.decode(request).map_err(|_| {
        invalid(
            "spec.request: Invalid value: []byte{...}: PEM block type must be CERTIFICATE REQUEST"
                .into(),
        )
    })?;
    ParsedRequest::parse(&pem)
        .map_err(|e| invalid(format!("spec.request: Invalid value: []byte{{...}}: {e}")))?;
    if let Some(seconds) = meta::at(csr, "spec.expirationSeconds").and_then(Value::as_i64)
        && seconds < MIN_EXPIRATION_SECONDS
    {
        return Err(invalid(format!(
            "spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than 600 seconds (10 minutes)"
        )));
    }
    Ok(())
}

fn condition_set(csr: &Value, kind: &str) -> bool {
    meta::at(csr, "status.conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(kind)
                    && c.get("status").and_then(Value::as_str) != Some("False")
            })
        })
}

/// Conditions as stored: status defaults to True and the times to now, as upstream fills them.
fn stamp_conditions(conditions: &mut Value) {
    let now = meta::now();
    for c in conditions.as_array_mut().into_iter().flatten() {
        let Some(c) = c.as_object_mut() else { continue };
        c.entry("status").or_insert_with(|| "True".into());
        c.entry("lastUpdateTime")
            .or_insert_with(|| now.clone().into());
        c.entry("lastTransitionTime")
            .or_insert_with(|| now.clone().into());
    }
}

/// PUT .../certificatesigningrequests/NAME/approval: only status.conditions change.
pub fn update_approval(store: &Store, name: &str, given: &Value) -> Result<Value, ApiError> {
    let mut conditions = meta::at(given, "status.conditions")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let approved = condition_set(given, "Approved");
    let denied = condition_set(given, "Denied");
    if approved && denied {
        return Err(ApiError::Invalid {
            kind: "CertificateSigningRequest".into(),
            name: name.to_string(),
            cause: "status.conditions[1].type: Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive".into(),
        });
    }
    stamp_conditions(&mut conditions);
    let given_rv = meta::str_at(given, "metadata.resourceVersion")
        .unwrap_or_default()
        .to_string();
    store.patch(resource(), "", name, UpdateScope::Status, |current| {
        let current_rv = meta::str_at(current, "metadata.resourceVersion").unwrap_or_default();
        if !given_rv.is_empty() && given_rv != current_rv {
            return Err(ApiError::conflict_modified(
                resource().qualified_plural(),
                name.to_string(),
            ));
        }
        let mut next = current.clone();
        if !next.get("status").is_some_and(Value::is_object) {
            next["status"] = json!({});
        }
        next["status"]["conditions"] = conditions;
        Ok(next)
    })
}

/// Adds a condition to a CSR's status (as a controller would through /status or /approval).
pub fn add_condition(
    store: &Store,
    name: &str,
    kind: &str,
    reason: &str,
    message: &str,
) -> Result<Value, ApiError> {
    store.patch(resource(), "", name, UpdateScope::Status, |current| {
        let mut next = current.clone();
        if !next.get("status").is_some_and(Value::is_object) {
            next["status"] = json!({});
        }
        let mut conditions = next["status"]
            .get("conditions")
            .cloned()
            .filter(Value::is_array)
            .unwrap_or_else(|| json!([]));
        if let Some(list) = conditions.as_array_mut() {
            list.push(
                json!({"type": kind, "status": "True", "reason": reason, "message": message}),
            );
        }
        stamp_conditions(&mut conditions);
        next["status"]["conditions"] = conditions;
        Ok(next)
    })
}

/// How the controllers treat CSRs.
#[derive(Debug, Clone)]
pub struct CsrSettings {
    /// Approve kubelet client certificate requests from bootstrappers and nodes.
    pub auto_approve: bool,
    /// The longest a signed certificate lasts (--cluster-signing-duration); also the duration
    /// when the CSR asks for none.
    pub signing_duration: Duration,
}

/// Runs the approver and the signers until the server goes away: every CSR added or
/// changed is looked at again.
pub async fn run_controllers(state: AppState) {
    loop {
        let (items, _, mut live) = state.store.snapshot_and_watch(resource(), None);
        for csr in &items {
            reconcile(&state, meta::name(csr));
        }
        loop {
            match live.recv().await {
                Ok(change) => {
                    if std::ptr::eq(change.resource, resource())
                        && change.event_type != EventType::Deleted
                    {
                        reconcile(&state, meta::name(&change.object));
                    }
                }
                Err(RecvError::Lagged(_)) => break,
                Err(RecvError::Closed) => return,
            }
        }
    }
}

fn reconcile(state: &AppState, name: &str) {
    let Ok(csr) = state.store.get(resource(), "", name) else {
        return;
    };
    if let Err(e) = reconcile_csr(state, name, &csr) {
        // A conflict means the CSR changed meanwhile; that change brings it back here.
        tracing::debug!(csr = name, error = %e, "CSR not processed");
    }
}

fn reconcile_csr(state: &AppState, name: &str, csr: &Value) -> Result<(), ApiError> {
    let settings = &state.cluster.csr;
    let failed = condition_set(csr, "Failed");
    let approved = condition_set(csr, "Approved");
    let denied = condition_set(csr, "Denied");
    if failed || denied {
        return Ok(());
    }
    if !approved {
        if settings.auto_approve
            && let Some(message) = auto_approval(csr)
        {
            add_condition(&state.store, name, "Approved", "AutoApproved", message)?;
        }
        return Ok(());
    }
    if meta::str_at(csr, "status.certificate").is_some_and(|c| !c.is_empty()) {
        return Ok(());
    }
    let signer = meta::str_at(csr, "spec.signerName").unwrap_or_default();
    if ![KUBELET_CLIENT_SIGNER, KUBELET_SERVING_SIGNER, CLIENT_SIGNER].contains(&signer) {
        return Ok(());
    }
    match sign(state, csr, signer) {
        Ok(cert_pem) => {
            state
                .store
                .patch(resource(), "", name, UpdateScope::Status, |current| {
                    let mut next = current.clone();
                    next["status"]["certificate"] = STANDARD.encode(&cert_pem).into();
                    Ok(next)
                })?;
        }
        Err(message) => {
            add_condition(
                &state.store,
                name,
                "Failed",
                "SignerValidationFailure",
                &message,
            )?;
        }
    }
    Ok(())
}

fn usages(csr: &Value) -> Vec<String> {
    meta::at(csr, "spec.usages")
        .and_then(Value::as_array)
        .map(|u| {
            u.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn request(csr: &Value) -> Result<(Vec<u8>, ParsedRequest), String> {
    let pem = STANDARD
        .decode(meta::str_at(csr, "spec.request").unwrap_or_default())
        .map_err(|e| format!("invalid certificate request: {e}"))?;
    let parsed =
        ParsedRequest::parse(&pem).map_err(|e| format!("invalid certificate request: {e}"))?;
    Ok((pem, parsed))
}

/// Signs an approved CSR, or says why its signer refuses it.
fn sign(state: &AppState, csr: &Value, signer: &str) -> Result<String, String> {
    let (pem, parsed) = request(csr)?;
    let usages = usages(csr);
    match signer {
        KUBELET_CLIENT_SIGNER => validate_kubelet_client(&parsed, &usages)?,
        KUBELET_SERVING_SIGNER => validate_kubelet_serving(&parsed, &usages)?,
        _ => {}
    }
    let mut validity = state.cluster.csr.signing_duration;
    if let Some(seconds) = meta::at(csr, "spec.expirationSeconds").and_then(Value::as_u64) {
        validity = validity.min(Duration::from_secs(seconds));
    }
    state
        .cluster
        .ca
        .sign_request(&pem, &usages, validity)
        .map_err(|e| e.to_string())
}

fn node_subject(parsed: &ParsedRequest) -> Result<(), String> {
    if parsed.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    if !parsed.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".into());
    }
    Ok(())
}

fn check_usages(usages: &[String], required: &str, allowed: &[&str]) -> Result<(), String> {
    if !usages.iter().any(|u| u == required) {
        return Err(format!("usages did not contain {required:?}"));
    }
    match usages
        .iter()
        .find(|u| *u != required && !allowed.contains(&u.as_str()))
    {
        Some(u) => Err(format!("usages did not match allowed usages: {u:?}")),
        None => Ok(()),
    }
}

/// What kubernetes.io/kube-apiserver-client-kubelet requires (ValidateKubeletClientCSR).
fn validate_kubelet_client(parsed: &ParsedRequest, usages: &[String]) -> Result<(), String> {
    node_subject(parsed)?;
    if !parsed.sans.is_empty() {
        return Err("subject alternative names are not allowed".into());
    }
    check_usages(
        usages,
        "client auth",
        &["digital signature", "key encipherment"],
    )
}

/// What kubernetes.io/kubelet-serving requires (ValidateKubeletServingCSR).
fn validate_kubelet_serving(parsed: &ParsedRequest, usages: &[String]) -> Result<(), String> {
    node_subject(parsed)?;
    if parsed.sans.is_empty() {
        return Err("DNS or IP subjectAltName is required".into());
    }
    if parsed.has_other_names() {
        return Err("only DNS and IP subjectAltNames are allowed".into());
    }
    check_usages(
        usages,
        "server auth",
        &["digital signature", "key encipherment"],
    )
}

/// The csrapprover's decision: kubelet client CSRs from bootstrappers (nodeclient) or from
/// the node itself renewing (selfnodeclient) are approved, with upstream's message.
fn auto_approval(csr: &Value) -> Option<&'static str> {
    if meta::str_at(csr, "spec.signerName") != Some(KUBELET_CLIENT_SIGNER) {
        return None;
    }
    let (_, parsed) = request(csr).ok()?;
    validate_kubelet_client(&parsed, &usages(csr)).ok()?;
    let username = meta::str_at(csr, "spec.username").unwrap_or_default();
    let groups: Vec<&str> = meta::at(csr, "spec.groups")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if username == parsed.common_name && groups.contains(&"system:nodes") {
        return Some("Auto approving self kubelet client certificate after SubjectAccessReview.");
    }
    if groups.contains(&"system:bootstrappers") {
        return Some("Auto approving kubelet client certificate after SubjectAccessReview.");
    }
    None
}
