//! Authentication, as upstream's delegating authenticator: the client certificate verified in
//! the TLS handshake (CN user, O groups), else a bearer token the API server vouches for through
//! a TokenReview (from the Authorization header, or for WebSockets from a
//! `base64url.bearer.authorization.k8s.io.` subprotocol), else anonymous when allowed. A token
//! that fails its review is a 401 even when anonymous requests are allowed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::authentication::v1::TokenReviewStatus;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::ReviewError;
use super::cache::TtlCache;

const AUTHENTICATED: &str = "system:authenticated";
const UNAUTHENTICATED: &str = "system:unauthenticated";

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    fn anonymous() -> User {
        User {
            name: "system:anonymous".into(),
            groups: vec![UNAUTHENTICATED.into()],
            ..Default::default()
        }
    }

    /// Every authenticated user is in system:authenticated (upstream's AuthenticatedGroupAdder).
    fn authenticated(mut self) -> User {
        if !self
            .groups
            .iter()
            .any(|g| g == AUTHENTICATED || g == UNAUTHENTICATED)
        {
            self.groups.push(AUTHENTICATED.into());
        }
        self
    }
}

/// Asks the API server who a bearer token belongs to (authentication.k8s.io/v1 TokenReview).
#[async_trait::async_trait]
pub trait TokenReviewer: Send + Sync + 'static {
    async fn review_token(&self, token: &str) -> Result<TokenReviewStatus, ReviewError>;
}

/// The user of a verified client certificate (DER). rustls already checked it against the
/// client CA, so a certificate that does not parse here cannot occur; it is treated as absent.
pub(crate) fn user_of_certificate(der: &[u8]) -> Option<User> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some(
        User {
            name,
            groups,
            ..Default::default()
        }
        .authenticated(),
    )
}

/// Bearer tokens checked by TokenReview, each verdict (yes or no) cached for the TTL.
pub(crate) struct TokenAuthenticator {
    reviewer: Arc<dyn TokenReviewer>,
    ttl: Duration,
    cache: TtlCache<Option<User>>,
}

impl TokenAuthenticator {
    pub(crate) fn new(reviewer: Arc<dyn TokenReviewer>, ttl: Duration) -> Self {
        TokenAuthenticator {
            reviewer,
            ttl,
            cache: TtlCache::new(),
        }
    }

    /// `Err` when the token is not accepted or the review failed (review failures are not
    /// cached, so the next request asks again).
    async fn authenticate(&self, token: &str) -> Result<User, String> {
        let verdict = match self.cache.get(token) {
            Some(verdict) => verdict,
            None => {
                let status = self
                    .reviewer
                    .review_token(token)
                    .await
                    .map_err(|e| format!("token review failed: {e}"))?;
                let verdict = user_of_review(status);
                self.cache
                    .insert(token.to_string(), verdict.clone(), self.ttl);
                verdict
            }
        };
        verdict.ok_or_else(|| "invalid bearer token".to_string())
    }
}

fn user_of_review(status: TokenReviewStatus) -> Option<User> {
    if status.authenticated != Some(true) {
        return None;
    }
    let info = status.user.unwrap_or_default();
    Some(
        User {
            name: info.username.unwrap_or_default(),
            uid: info.uid.unwrap_or_default(),
            groups: info.groups.unwrap_or_default(),
            extra: info.extra.unwrap_or_default().into_iter().collect(),
        }
        .authenticated(),
    )
}

/// The token of an `Authorization: Bearer TOKEN` header, as upstream's bearertoken reads it.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let mut parts = value.splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

const BEARER_PROTOCOL_PREFIX: &str = "base64url.bearer.authorization.k8s.io.";

fn is_websocket(headers: &HeaderMap) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket")
}

/// A WebSocket's bearer token subprotocol (upstream's websocket ProtocolAuthenticator): the
/// token and the other subprotocols, which replace the header once the token is accepted.
fn websocket_token(headers: &HeaderMap) -> Result<Option<(String, String)>, String> {
    if !is_websocket(headers) {
        return Ok(None);
    }
    let mut token = None;
    let mut others = Vec::new();
    let protocols = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    for protocol in protocols {
        let Some(encoded) = protocol.strip_prefix(BEARER_PROTOCOL_PREFIX) else {
            others.push(protocol);
            continue;
        };
        if token.is_some() {
            return Err("multiple base64.bearer.authorization tokens specified".into());
        }
        let decoded = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| "invalid base64.bearer.authorization token encoding".to_string())?;
        token = Some(
            String::from_utf8(decoded)
                .map_err(|_| "invalid base64.bearer.authorization token".to_string())?,
        );
    }
    match token {
        Some(token) if !token.is_empty() => {
            if others.is_empty() {
                return Err("missing additional subprotocol".into());
            }
            Ok(Some((token, others.join(","))))
        }
        _ => Ok(None),
    }
}

pub(crate) struct Authenticator {
    pub(crate) anonymous: bool,
    pub(crate) tokens: Option<TokenAuthenticator>,
}

impl Authenticator {
    /// The request's user, or why it has none (the reason goes to the log, the client gets 401).
    pub(crate) async fn authenticate(
        &self,
        certificate_user: Option<User>,
        headers: &mut HeaderMap,
    ) -> Result<User, String> {
        if let Some(user) = certificate_user {
            return Ok(user);
        }
        if let Some(tokens) = &self.tokens {
            if let Some(token) = bearer_token(headers) {
                return tokens.authenticate(token).await;
            }
            if let Some((token, others)) = websocket_token(headers)? {
                let user = tokens.authenticate(&token).await?;
                // The token must not reach the runtime, nor be echoed back.
                if let Ok(others) = HeaderValue::from_str(&others) {
                    headers.insert(header::SEC_WEBSOCKET_PROTOCOL, others);
                }
                return Ok(user);
            }
        }
        if self.anonymous {
            return Ok(User::anonymous());
        }
        Err("no credentials".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::UserInfo;
    use rcgen::{CertificateParams, DnType, KeyPair};

    #[test]
    fn common_name_is_the_user_and_organizations_the_groups() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "alice");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            user_of_certificate(cert.der()),
            Some(User {
                name: "alice".into(),
                groups: vec!["system:masters".into(), "system:authenticated".into()],
                ..Default::default()
            })
        );
        assert_eq!(user_of_certificate(b"not a certificate"), None);
    }

    #[test]
    fn bearer_tokens_are_read_like_upstream() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            bearer_token(&headers).map(str::to_string)
        };
        assert_eq!(with("Bearer abc"), Some("abc".into()));
        assert_eq!(with("bearer abc"), Some("abc".into()));
        assert_eq!(with("Basic abc"), None);
        assert_eq!(with("Bearer"), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn websocket_subprotocols_carry_a_bearer_token() {
        let with = |protocols: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONNECTION, "Upgrade".parse().unwrap());
            headers.insert(header::UPGRADE, "websocket".parse().unwrap());
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocols.parse().unwrap());
            websocket_token(&headers)
        };
        let token = URL_SAFE_NO_PAD.encode("good-token");
        assert_eq!(
            with(&format!(
                "v4.channel.k8s.io, {BEARER_PROTOCOL_PREFIX}{token}, channel.k8s.io"
            )),
            Ok(Some((
                "good-token".into(),
                "v4.channel.k8s.io,channel.k8s.io".into()
            )))
        );
        assert_eq!(with("v4.channel.k8s.io"), Ok(None));
        assert_eq!(
            with(&format!("{BEARER_PROTOCOL_PREFIX}{token}")),
            Err("missing additional subprotocol".into())
        );
        assert_eq!(
            with(&format!("v4.channel.k8s.io, {BEARER_PROTOCOL_PREFIX}!!")),
            Err("invalid base64.bearer.authorization token encoding".into())
        );
    }

    #[test]
    fn a_reviewed_user_keeps_uid_groups_and_extra() {
        let status = TokenReviewStatus {
            authenticated: Some(true),
            user: Some(UserInfo {
                username: Some("system:serviceaccount:ns:sa".into()),
                uid: Some("u-1".into()),
                groups: Some(vec!["system:serviceaccounts".into()]),
                extra: Some([("k".to_string(), vec!["v".to_string()])].into()),
            }),
            ..Default::default()
        };
        let user = user_of_review(status).unwrap();
        assert_eq!(user.uid, "u-1");
        assert_eq!(
            user.groups,
            vec!["system:serviceaccounts", "system:authenticated"]
        );
        assert_eq!(user.extra["k"], vec!["v"]);
        assert_eq!(user_of_review(TokenReviewStatus::default()), None);
    }
}
