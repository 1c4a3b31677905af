//! Authorization, as upstream's kubelet: every request is a request on the node object,
//! `nodes/<subresource>` with the node's name, the verb from the HTTP method and the subresource
//! from the path (pkg/kubelet/server/auth.go, with KubeletFineGrainedAuthz on as it is by
//! default since 1.33: /pods, /healthz and /configz try their own subresource first, then proxy).
//! Webhook mode asks the API server with a SubjectAccessReview and caches each verdict.

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReviewSpec, SubjectAccessReviewStatus,
};

use super::ReviewError;
use super::authn::User;
use super::cache::TtlCache;

/// Asks the API server whether a user may do something (authorization.k8s.io/v1
/// SubjectAccessReview).
#[async_trait::async_trait]
pub trait AccessReviewer: Send + Sync + 'static {
    async fn review_access(
        &self,
        spec: &SubjectAccessReviewSpec,
    ) -> Result<SubjectAccessReviewStatus, ReviewError>;
}

/// The API verb of an HTTP method; other methods (HEAD, OPTIONS) have none, as upstream.
pub(crate) fn verb(method: &Method) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::GET => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
}

/// Whether `path` is `prefix` or below it (upstream's isSubpath).
fn is_subpath(path: &str, prefix: &str) -> bool {
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The `nodes` subresource a request on `path` is authorized as.
pub(crate) fn subresource(path: &str) -> &'static str {
    let by_prefix = [
        ("/stats", "stats"),
        ("/metrics", "metrics"),
        ("/logs", "log"),
        ("/checkpoint", "checkpoint"),
    ];
    by_prefix
        .iter()
        .find(|(p, _)| is_subpath(path, p))
        .map_or("proxy", |(_, subresource)| *subresource)
}

/// The outcome of authorizing one request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Allow,
    /// The body of the 403.
    Forbidden(String),
    /// The body of the 500: the API server could not be asked.
    Error(String),
}

pub(crate) enum Authorizer {
    AlwaysAllow,
    Webhook(Box<WebhookAuthorizer>),
}

pub(crate) struct WebhookAuthorizer {
    pub(crate) reviewer: Arc<dyn AccessReviewer>,
    pub(crate) allowed_ttl: Duration,
    pub(crate) denied_ttl: Duration,
    pub(crate) cache: TtlCache<bool>,
}

impl Authorizer {
    pub(crate) async fn authorize(
        &self,
        user: &User,
        method: &Method,
        path: &str,
        node_name: &str,
    ) -> Decision {
        let Authorizer::Webhook(webhook) = self else {
            return Decision::Allow;
        };
        let verb = verb(method);
        let subresource = subresource(path);
        let spec = review_spec(user, verb, subresource, node_name);
        match webhook.allowed(&spec).await {
            Ok(true) => return Decision::Allow,
            Ok(false) => {}
            Err(error) => {
                tracing::error!(user = %user.name, verb, subresource, %error, "authorization error");
                return Decision::Error(format!(
                    "Authorization error (user={}, verb={verb}, resource=nodes, subresource={subresource})",
                    user.name
                ));
            }
        }
        let message = format!(
            "Forbidden (user={}, verb={verb}, resource=nodes, subresource={subresource})",
            user.name
        );
        tracing::debug!("{message}");
        Decision::Forbidden(message)
    }
}

impl WebhookAuthorizer {
    /// Whether the review allows `spec`; allowed verdicts are cached for the authorized TTL,
    /// others for the unauthorized TTL, failures not at all.
    async fn allowed(&self, spec: &SubjectAccessReviewSpec) -> Result<bool, ReviewError> {
        let key = serde_json::to_string(spec).map_err(|e| ReviewError(e.to_string()))?;
        if let Some(allowed) = self.cache.get(&key) {
            return Ok(allowed);
        }
        let status = self.reviewer.review_access(spec).await?;
        let ttl = if status.allowed {
            self.allowed_ttl
        } else {
            self.denied_ttl
        };
        self.cache.insert(key, status.allowed, ttl);
        Ok(status.allowed)
    }
}

pub(crate) fn review_spec(
    user: &User,
    verb: &str,
    subresource: &str,
    node_name: &str,
) -> SubjectAccessReviewSpec {
    SubjectAccessReviewSpec {
        user: Some(user.name.clone()),
        uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
        groups: Some(user.groups.clone()),
        extra: (!user.extra.is_empty()).then(|| user.extra.clone().into_iter().collect()),
        resource_attributes: Some(ResourceAttributes {
            verb: Some(verb.to_string()),
            group: Some(String::new()),
            version: Some("v1".into()),
            resource: Some("nodes".into()),
            subresource: Some(subresource.to_string()),
            name: Some(node_name.to_string()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_upstream_subresources() {
        let table = [
            ("/stats/summary", "stats"),
            ("/stats", "stats"),
            ("/metrics", "metrics"),
            ("/metrics/cadvisor", "metrics"),
            ("/metricsx", "proxy"),
            ("/logs/", "log"),
            ("/logs/syslog", "log"),
            ("/checkpoint/ns/p/c", "checkpoint"),
            ("/pods", "proxy"),
            ("/pods/default/web", "proxy"),
            ("/podsx", "proxy"),
            ("/runningpods/", "proxy"),
            ("/healthz", "proxy"),
            ("/healthz/syncloop", "proxy"),
            ("/configz", "proxy"),
            ("/exec/ns/p/c", "proxy"),
            ("/attach/ns/p/c", "proxy"),
            ("/portForward/ns/p", "proxy"),
            ("/containerLogs/ns/p/c", "proxy"),
            ("/run/ns/p/c", "proxy"),
            ("/", "proxy"),
        ];
        for (path, expected) in table {
            assert_eq!(subresource(path), expected, "{path}");
        }
    }

    #[test]
    fn methods_map_to_verbs() {
        assert_eq!(verb(&Method::GET), "get");
        assert_eq!(verb(&Method::POST), "create");
        assert_eq!(verb(&Method::PUT), "update");
        assert_eq!(verb(&Method::PATCH), "patch");
        assert_eq!(verb(&Method::DELETE), "delete");
        assert_eq!(verb(&Method::HEAD), "");
    }

    #[test]
    fn the_review_names_the_node_and_the_user() {
        let user = User {
            name: "bob".into(),
            uid: "42".into(),
            groups: vec!["g".into()],
            extra: [("scopes".to_string(), vec!["a".to_string()])].into(),
        };
        let spec = review_spec(&user, "get", "stats", "node-a");
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            serde_json::json!({
                "user": "bob", "uid": "42", "groups": ["g"], "extra": {"scopes": ["a"]},
                "resourceAttributes": {"verb": "get", "group": "", "version": "v1",
                    "resource": "nodes", "subresource": "stats", "name": "node-a"},
            })
        );
    }
}
