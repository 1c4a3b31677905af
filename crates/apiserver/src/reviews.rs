//! The APIs that answer rather than store: serviceaccounts/NAME/token (TokenRequest),
//! TokenReview and SubjectAccessReview, the last with answers the test decides.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::auth::API_AUDIENCE;
use crate::error::ApiError;
use crate::meta;
use crate::resources;
use crate::server::AppState;

/// The token lifetime when a TokenRequest asks for none.
const DEFAULT_TOKEN_SECONDS: i64 = 3600;
const MIN_TOKEN_SECONDS: i64 = 600;
const MAX_TOKEN_SECONDS: i64 = 1 << 32;

fn invalid(kind: &str, name: &str, cause: String) -> ApiError {
    ApiError::Invalid {
        kind: kind.into(),
        name: name.into(),
        cause,
    }
}

/// POST /api/v1/namespaces/NS/serviceaccounts/NAME/token.
pub fn token_request(
    state: &AppState,
    namespace: &str,
    name: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    let service_accounts =
        resources::find("", "v1", "serviceaccounts").expect("serviceaccounts are served");
    let sa = state.store.get(service_accounts, namespace, name)?;
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let seconds = spec
        .get("expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_TOKEN_SECONDS);
    if seconds < MIN_TOKEN_SECONDS {
        return Err(invalid(
            "TokenRequest",
            name,
            format!(
                "spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than 10 minutes"
            ),
        ));
    }
    if seconds > MAX_TOKEN_SECONDS {
        return Err(invalid(
            "TokenRequest",
            name,
            format!(
                "spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"
            ),
        ));
    }
    let mut audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences.push(API_AUDIENCE.to_string());
    }
    let bound = spec.get("boundObjectRef").filter(|b| b.is_object());
    if let Some(bound) = bound {
        check_bound_object(state, namespace, bound)?;
    }
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(seconds);
    let token = state
        .cluster
        .auth
        .issue_service_account_token(&sa, &audiences, expires, bound);
    let mut out_spec = json!({"audiences": audiences, "expirationSeconds": seconds});
    if let Some(bound) = bound {
        out_spec["boundObjectRef"] = bound.clone();
    }
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": meta::now()},
        "spec": out_spec,
        "status": {"token": token, "expirationTimestamp": meta::timestamp(expires)},
    }))
}

/// A token bound to a Pod or Secret needs that object, with the UID given.
fn check_bound_object(state: &AppState, namespace: &str, bound: &Value) -> Result<(), ApiError> {
    let kind = bound
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let plural = match kind {
        "Pod" => "pods",
        "Secret" => "secrets",
        other => {
            return Err(invalid(
                "TokenRequest",
                "",
                format!(
                    "spec.boundObjectRef.kind: Unsupported value: {other:?}: supported values: \"Pod\", \"Secret\""
                ),
            ));
        }
    };
    let resource = resources::find("", "v1", plural).expect("pods and secrets are served");
    let name = bound
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let object = state.store.get(resource, namespace, name)?;
    let want = bound.get("uid").and_then(Value::as_str).unwrap_or_default();
    let have = meta::str_at(&object, "metadata.uid").unwrap_or_default();
    if !want.is_empty() && want != have {
        return Err(ApiError::Conflict {
            resource: plural.into(),
            name: name.into(),
            cause: format!(
                "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        });
    }
    Ok(())
}

/// POST /apis/authentication.k8s.io/v1/tokenreviews.
pub fn token_review(state: &AppState, body: &Value) -> Value {
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let token = spec
        .get("token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences.push(API_AUDIENCE.to_string());
    }
    let status = match state
        .cluster
        .auth
        .authenticate_token(&state.store, token, &audiences)
    {
        Some((user, accepted)) => {
            json!({"authenticated": true, "user": user, "audiences": accepted})
        }
        None => json!({"user": {}, "error": "invalid bearer token"}),
    };
    json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": status,
    })
}

/// What a SubjectAccessReview asks: may this user do this?
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessReview {
    pub user: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub verb: String,
    pub namespace: String,
    /// The API group of the resource ("" for core).
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// For non-resource requests (nonResourceAttributes.path), such as /healthz.
    pub path: String,
}

/// The answer to a SubjectAccessReview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessDecision {
    Allow,
    /// Denied, with the reason given to the requester.
    Deny(String),
    /// Not allowed by this authorizer, without an explicit denial.
    NoOpinion(String),
}

type Policy = Arc<dyn Fn(&AccessReview) -> AccessDecision + Send + Sync>;

/// The answers SubjectAccessReviews get: deny rules first, then the policy, else allow.
#[derive(Default)]
pub struct Authorizer {
    policy: Mutex<Option<Policy>>,
    deny: Mutex<Vec<[String; 4]>>,
    received: Mutex<Vec<AccessReview>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Authorizer {
    pub fn set_policy(&self, policy: Policy) {
        *lock(&self.policy) = Some(policy);
    }

    /// Denies `user` the `verb` on `resource`/`subresource`; "*" matches anything.
    pub fn deny(&self, user: &str, verb: &str, resource: &str, subresource: &str) {
        lock(&self.deny).push([user, verb, resource, subresource].map(str::to_string));
    }

    pub fn received(&self) -> Vec<AccessReview> {
        lock(&self.received).clone()
    }

    fn decide(&self, review: &AccessReview) -> AccessDecision {
        let matches = |want: &str, have: &str| want == "*" || want == have;
        let denied = lock(&self.deny).iter().any(|[user, verb, resource, sub]| {
            matches(user, &review.user)
                && matches(verb, &review.verb)
                && matches(resource, &review.resource)
                && matches(sub, &review.subresource)
        });
        if denied {
            return AccessDecision::Deny("denied by the test".into());
        }
        let policy = lock(&self.policy).clone();
        match policy {
            Some(policy) => policy(review),
            None => AccessDecision::Allow,
        }
    }

    /// POST /apis/authorization.k8s.io/v1/subjectaccessreviews.
    pub fn review(&self, body: &Value) -> Value {
        let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
        let text = |v: Option<&Value>, key: &str| {
            v.and_then(|v| v.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let resource = spec.get("resourceAttributes");
        let non_resource = spec.get("nonResourceAttributes");
        let review = AccessReview {
            user: text(Some(&spec), "user"),
            uid: text(Some(&spec), "uid"),
            groups: spec
                .get("groups")
                .and_then(Value::as_array)
                .map(|g| {
                    g.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            verb: if resource.is_some() {
                text(resource, "verb")
            } else {
                text(non_resource, "verb")
            },
            namespace: text(resource, "namespace"),
            group: text(resource, "group"),
            resource: text(resource, "resource"),
            subresource: text(resource, "subresource"),
            name: text(resource, "name"),
            path: text(non_resource, "path"),
        };
        let decision = self.decide(&review);
        lock(&self.received).push(review);
        let status = match decision {
            AccessDecision::Allow => json!({"allowed": true}),
            AccessDecision::Deny(reason) => {
                json!({"allowed": false, "denied": true, "reason": reason})
            }
            AccessDecision::NoOpinion(reason) => json!({"allowed": false, "reason": reason}),
        };
        json!({
            "kind": "SubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": spec,
            "status": status,
        })
    }
}
