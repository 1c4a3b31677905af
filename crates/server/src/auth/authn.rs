//! Authentication: the client certificate verified during the TLS handshake names the user
//! (CN) and groups (O); without one the request is anonymous, if anonymous auth is on.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub(crate) name: String,
    pub(crate) groups: Vec<String>,
}

impl User {
    fn anonymous() -> User {
        User {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
        }
    }
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
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    groups.push("system:authenticated".into());
    Some(User { name, groups })
}

/// The authenticated user of the connection, set by the listener when a certificate was given.
#[derive(Debug, Clone)]
pub(crate) struct Peer(pub Option<User>);

/// Refuses requests nobody is authenticated for, as upstream's filter does, and makes the user
/// available to handlers. Authorization is AlwaysAllow: every authenticated user may proceed.
pub(crate) async fn require_user(
    State(anonymous_auth): State<bool>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request.extensions().get::<Peer>().and_then(|p| p.0.clone());
    let user = match peer {
        Some(user) => user,
        None if anonymous_auth => User::anonymous(),
        None => return (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response(),
    };
    tracing::debug!(user = %user.name, path = %request.uri().path(), "kubelet API request");
    request.extensions_mut().insert(user);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
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
            })
        );
        assert_eq!(user_of_certificate(b"not a certificate"), None);
    }
}
