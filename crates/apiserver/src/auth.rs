//! Authentication as the real API server does it: client certificates (CN = user, O = groups),
//! static bearer tokens, bootstrap tokens (Secrets in kube-system) and the service account
//! tokens the TokenRequest API issues; anonymous requests only when allowed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Serialize;
use serde_json::{Value, json};

use crate::meta;
use crate::resources;
use crate::store::Store;

/// The audience tokens get when a TokenRequest names none, and that API requests need: the
/// API server's --api-audiences, which default to its service account issuer.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// Who made a request, as the API server's authenticators report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn new(username: &str, groups: &[&str]) -> Self {
        UserInfo {
            username: username.to_string(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// Every authenticated user is also in system:authenticated.
    fn authenticated(mut self) -> Self {
        if !self.groups.iter().any(|g| g == "system:authenticated") {
            self.groups.push("system:authenticated".into());
        }
        self
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// A service account token the TokenRequest API issued.
struct IssuedToken {
    namespace: String,
    name: String,
    uid: String,
    expires: jiff::Timestamp,
    audiences: Vec<String>,
}

/// How a request authenticated, or why it did not.
#[derive(Debug, PartialEq, Eq)]
pub enum Authentication {
    User(UserInfo),
    /// Credentials were given and not valid, or none were given where they are required.
    Unauthorized,
}

/// The authenticators of one server.
pub struct Authenticator {
    tls: bool,
    anonymous: AtomicBool,
    tokens: Mutex<HashMap<String, UserInfo>>,
    issued: Mutex<HashMap<String, IssuedToken>>,
}

impl Authenticator {
    pub fn new(tls: bool, anonymous: bool) -> Self {
        Authenticator {
            tls,
            anonymous: AtomicBool::new(anonymous),
            tokens: Mutex::new(HashMap::new()),
            issued: Mutex::new(HashMap::new()),
        }
    }

    pub fn set_anonymous(&self, allowed: bool) {
        self.anonymous.store(allowed, Ordering::SeqCst);
    }

    /// Registers a static token (--token-auth-file).
    pub fn add_token(&self, token: &str, user: UserInfo) {
        lock(&self.tokens).insert(token.to_string(), user);
    }

    /// Authenticates a request from its client certificate's user and Authorization header.
    pub fn authenticate(
        &self,
        store: &Store,
        certificate_user: Option<&UserInfo>,
        authorization: Option<&str>,
    ) -> Authentication {
        if let Some(user) = certificate_user {
            return Authentication::User(user.clone().authenticated());
        }
        if let Some(header) = authorization {
            let token = header
                .strip_prefix("Bearer ")
                .map(str::trim)
                .unwrap_or_default();
            return match self.authenticate_token(store, token, &[API_AUDIENCE.to_string()]) {
                Some((user, _)) => Authentication::User(user),
                None => Authentication::Unauthorized,
            };
        }
        if !self.tls {
            // The plain HTTP listener is the old insecure port: everyone is an administrator.
            return Authentication::User(
                UserInfo::new("system:unsecured", &["system:masters"]).authenticated(),
            );
        }
        if self.anonymous.load(Ordering::SeqCst) {
            return Authentication::User(UserInfo::new(
                "system:anonymous",
                &["system:unauthenticated"],
            ));
        }
        Authentication::Unauthorized
    }

    /// The user a bearer token stands for and the audiences it was accepted for, when one of
    /// `audiences` is among the token's (service account tokens) or the token has none.
    pub fn authenticate_token(
        &self,
        store: &Store,
        token: &str,
        audiences: &[String],
    ) -> Option<(UserInfo, Vec<String>)> {
        if token.is_empty() {
            return None;
        }
        if let Some(user) = lock(&self.tokens).get(token) {
            return Some((user.clone().authenticated(), audiences.to_vec()));
        }
        if let Some(user) = bootstrap_token_user(store, token) {
            return Some((user.authenticated(), audiences.to_vec()));
        }
        let issued = lock(&self.issued);
        let record = issued.get(token)?;
        let accepted: Vec<String> = audiences
            .iter()
            .filter(|a| record.audiences.contains(a))
            .cloned()
            .collect();
        if accepted.is_empty() || record.expires <= jiff::Timestamp::now() {
            return None;
        }
        // A token outlives neither its service account nor a recreation of it.
        let sa = store
            .get(service_accounts(), &record.namespace, &record.name)
            .ok()?;
        if meta::str_at(&sa, "metadata.uid") != Some(record.uid.as_str()) {
            return None;
        }
        let user = UserInfo {
            username: format!("system:serviceaccount:{}:{}", record.namespace, record.name),
            uid: record.uid.clone(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{}", record.namespace),
            ],
        };
        Some((user.authenticated(), accepted))
    }

    /// Issues a token for the service account `sa` (as stored), valid until `expires`.
    /// It has the shape of a JWT with the claims the real issuer writes; its signature is
    /// random, as only this server validates it.
    pub fn issue_service_account_token(
        &self,
        sa: &Value,
        audiences: &[String],
        expires: jiff::Timestamp,
        bound_object: Option<&Value>,
    ) -> String {
        let namespace = meta::namespace(sa).to_string();
        let name = meta::name(sa).to_string();
        let uid = meta::str_at(sa, "metadata.uid")
            .unwrap_or_default()
            .to_string();
        let now = jiff::Timestamp::now().as_second();
        let mut kubernetes = json!({
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": uid},
        });
        if let Some(bound) = bound_object
            && let Some(kind) = bound.get("kind").and_then(Value::as_str)
        {
            kubernetes[kind.to_lowercase()] =
                json!({"name": bound.get("name"), "uid": bound.get("uid")});
        }
        let claims = json!({
            "aud": audiences,
            "exp": expires.as_second(),
            "iat": now,
            "nbf": now,
            "iss": API_AUDIENCE,
            "jti": uuid::Uuid::new_v4().to_string(),
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
            "kubernetes.io": kubernetes,
        });
        let header = json!({"alg": "RS256", "kid": "test-apiserver"});
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes()),
        );
        lock(&self.issued).insert(
            token.clone(),
            IssuedToken {
                namespace,
                name,
                uid,
                expires,
                audiences: audiences.to_vec(),
            },
        );
        token
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn service_accounts() -> &'static resources::Resource {
    resources::find("", "v1", "serviceaccounts").expect("serviceaccounts are served")
}

fn secrets() -> &'static resources::Resource {
    resources::find("", "v1", "secrets").expect("secrets are served")
}

/// Splits a bootstrap token, "[a-z0-9]{6}.[a-z0-9]{16}", into its id and secret.
pub fn parse_bootstrap_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let valid = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (valid(id, 6) && valid(secret, 16)).then_some((id, secret))
}

/// The bootstrap token authenticator: the Secret kube-system/bootstrap-token-ID of type
/// bootstrap.kubernetes.io/token must hold the token, allow authentication and not be expired.
fn bootstrap_token_user(store: &Store, token: &str) -> Option<UserInfo> {
    let (id, secret) = parse_bootstrap_token(token)?;
    let object = store
        .get(secrets(), "kube-system", &format!("bootstrap-token-{id}"))
        .ok()?;
    if meta::at(&object, "metadata.deletionTimestamp").is_some()
        || meta::str_at(&object, "type") != Some("bootstrap.kubernetes.io/token")
    {
        return None;
    }
    let field = |key: &str| secret_field(&object, key);
    if field("token-id").as_deref() != Some(id)
        || field("token-secret").as_deref() != Some(secret)
        || field("usage-bootstrap-authentication").as_deref() != Some("true")
    {
        return None;
    }
    if let Some(expiration) = field("expiration") {
        let expires: jiff::Timestamp = expiration.parse().ok()?;
        if expires <= jiff::Timestamp::now() {
            return None;
        }
    }
    let mut groups = vec!["system:bootstrappers".to_string()];
    if let Some(extra) = field("auth-extra-groups") {
        groups.extend(
            extra
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty() && !groups.iter().any(|have| have == g))
                .map(str::to_string)
                .collect::<Vec<_>>(),
        );
    }
    Some(UserInfo {
        username: format!("system:bootstrap:{id}"),
        uid: String::new(),
        groups,
    })
}

/// A Secret's value for `key`, from data (base64) or stringData.
fn secret_field(secret: &Value, key: &str) -> Option<String> {
    if let Some(encoded) = secret
        .pointer(&format!("/data/{key}"))
        .and_then(Value::as_str)
    {
        return STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
    }
    secret
        .pointer(&format!("/stringData/{key}"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The Secret that makes `token` a valid bootstrap token, as kubeadm creates it.
pub fn bootstrap_token_secret(token: &str, extra_groups: &[&str]) -> Option<Value> {
    let (id, secret) = parse_bootstrap_token(token)?;
    let b64 = |s: &str| STANDARD.encode(s);
    let mut data = json!({
        "token-id": b64(id),
        "token-secret": b64(secret),
        "usage-bootstrap-authentication": b64("true"),
        "usage-bootstrap-signing": b64("true"),
    });
    if !extra_groups.is_empty() {
        data["auth-extra-groups"] = b64(&extra_groups.join(",")).into();
    }
    Some(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "data": data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_tokens_need_their_secret() {
        let store = Store::new();
        let auth = Authenticator::new(true, false);
        let token = "abcdef.0123456789abcdef";
        assert_eq!(
            auth.authenticate(&store, None, Some(&format!("Bearer {token}"))),
            Authentication::Unauthorized
        );
        store
            .put(
                bootstrap_token_secret(token, &["system:bootstrappers:kubeadm:default-node-token"])
                    .unwrap(),
            )
            .unwrap();
        let Authentication::User(user) =
            auth.authenticate(&store, None, Some(&format!("Bearer {token}")))
        else {
            panic!("the bootstrap token authenticates");
        };
        assert_eq!(user.username, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:kubeadm:default-node-token",
                "system:authenticated"
            ]
        );
        assert_eq!(
            auth.authenticate(&store, None, Some("Bearer abcdef.0123456789abcdeX")),
            Authentication::Unauthorized
        );
        assert!(parse_bootstrap_token("ABCDEF.0123456789abcdef").is_none());
    }

    #[test]
    fn anonymous_only_when_allowed() {
        let store = Store::new();
        let auth = Authenticator::new(true, false);
        assert_eq!(
            auth.authenticate(&store, None, None),
            Authentication::Unauthorized
        );
        auth.set_anonymous(true);
        assert_eq!(
            auth.authenticate(&store, None, None),
            Authentication::User(UserInfo::new(
                "system:anonymous",
                &["system:unauthenticated"]
            ))
        );
    }
}
