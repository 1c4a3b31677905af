//! Registry credentials from the CRI `AuthConfig`, as containerd reads them: a registry token is
//! sent as a bearer token; username and password (given apart, or as `auth`, base64 of
//! `user:pass`) go to the registry's Basic or token-server challenge; an identity token is an
//! OAuth2 refresh token, exchanged at the registry's token server (containerd's POST) for an
//! access token.

use crate::error::ImageError;
use base64::Engine as _;
use k8s_cri::v1::AuthConfig;
use oci_client::secrets::RegistryAuth;

/// The user name docker sends with an identity token, when a registry does not take it in an
/// OAuth2 POST (Basic auth, or a token server that only serves GETs).
const IDENTITY_TOKEN_USER: &str = "<token>";

/// The OAuth2 client id containerd sends to token servers.
const CLIENT_ID: &str = "containerd-client";

/// The credentials of one pull.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Credentials {
    /// Handed to oci-client as they are.
    Registry(RegistryAuth),
    /// An identity token: see [`exchange_identity_token`].
    IdentityToken(String),
}

pub(crate) fn credentials(auth: Option<&AuthConfig>) -> Result<Credentials, ImageError> {
    let Some(auth) = auth else {
        return Ok(Credentials::Registry(RegistryAuth::Anonymous));
    };
    if !auth.registry_token.is_empty() {
        return Ok(Credentials::Registry(RegistryAuth::Bearer(
            auth.registry_token.clone(),
        )));
    }
    // As containerd: the identity token wins over a user name and password.
    if !auth.identity_token.is_empty() {
        return Ok(Credentials::IdentityToken(auth.identity_token.clone()));
    }
    if !auth.username.is_empty() {
        return Ok(Credentials::Registry(RegistryAuth::Basic(
            auth.username.clone(),
            auth.password.clone(),
        )));
    }
    if !auth.auth.is_empty() {
        let invalid = |reason: &str| ImageError::Unauthorized {
            registry: auth.server_address.clone(),
            cause: format!("the auth field of the credentials {reason}"),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.auth.trim())
            .map_err(|_| invalid("is not base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| invalid("is not UTF-8"))?;
        let (user, pass) = decoded
            .split_once(':')
            .ok_or_else(|| invalid("is not user:password"))?;
        return Ok(Credentials::Registry(RegistryAuth::Basic(
            user.to_string(),
            pass.to_string(),
        )));
    }
    Ok(Credentials::Registry(RegistryAuth::Anonymous))
}

/// Exchanges identity token `token` for pulls of `repository` from the registry at `base`
/// (`https://host:port`), as containerd does: the registry's Bearer challenge on `/v2/` names
/// the token server, which gets an OAuth2 POST (`grant_type=refresh_token`) and answers with
/// an access token, then sent as the bearer token. A registry without a Bearer challenge, or a
/// token server refusing the POST with 400, 401 or 404 (not every one serves OAuth2), gets the
/// token as the Basic password instead, the token server with a GET.
pub(crate) async fn exchange_identity_token(
    http: &reqwest::Client,
    registry: &str,
    base: &str,
    repository: &str,
    token: &str,
) -> Result<RegistryAuth, ImageError> {
    let fallback = || RegistryAuth::Basic(IDENTITY_TOKEN_USER.to_string(), token.to_string());
    let unreachable = |what: &str, e: reqwest::Error| ImageError::Unreachable {
        registry: registry.to_string(),
        cause: format!("{what}: {}", super::registry::error_chain(&e)),
    };
    let probe = http
        .get(format!("{base}/v2/"))
        .send()
        .await
        .map_err(|e| unreachable("auth challenge", e))?;
    let challenge = probe
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(bearer_challenge);
    let Some((realm, service)) = challenge else {
        return Ok(fallback());
    };
    let scope = format!("repository:{repository}:pull");
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("scope", &scope),
        ("client_id", CLIENT_ID),
    ];
    if let Some(service) = &service {
        form.push(("service", service));
    }
    let answer = http
        .post(&realm)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form_encode(&form))
        .send()
        .await
        .map_err(|e| unreachable(&format!("token server {realm}"), e))?;
    let status = answer.status();
    if matches!(status.as_u16(), 400 | 401 | 404) {
        tracing::debug!(%realm, %status, "token server refused the OAuth2 POST; trying a GET");
        return Ok(fallback());
    }
    let refused = |cause: String| ImageError::Unauthorized {
        registry: registry.to_string(),
        cause: format!("token server {realm}: {cause}"),
    };
    if !status.is_success() {
        let body = answer.text().await.unwrap_or_default();
        return Err(refused(format!("{status}: {}", body.trim())));
    }
    #[derive(serde::Deserialize)]
    struct TokenAnswer {
        #[serde(default)]
        access_token: String,
        #[serde(default)]
        token: String,
    }
    let answer: TokenAnswer = answer
        .json()
        .await
        .map_err(|e| refused(format!("invalid answer: {e}")))?;
    let access = if answer.access_token.is_empty() {
        answer.token
    } else {
        answer.access_token
    };
    if access.is_empty() {
        return Err(refused("no access token in the answer".into()));
    }
    Ok(RegistryAuth::Bearer(access))
}

/// The realm and service of a `WWW-Authenticate: Bearer realm="...",service="..."` challenge.
fn bearer_challenge(header: &str) -> Option<(String, Option<String>)> {
    let header = header.trim_start();
    let (scheme, mut rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let (mut realm, mut service) = (None, None);
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let value;
        if let Some(quoted) = after.strip_prefix('"') {
            let mut text = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => text.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => text.push(c),
                }
            }
            value = text;
            rest = &quoted[end..];
        } else {
            let end = after.find(',').unwrap_or(after.len());
            value = after[..end].trim().to_string();
            rest = &after[end..];
        }
        match key.trim().to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value),
            "service" => service = Some(value),
            _ => {}
        }
    }
    Some((realm?, service))
}

/// `application/x-www-form-urlencoded` of `pairs`.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(f: impl FnOnce(&mut AuthConfig)) -> Credentials {
        let mut a = AuthConfig::default();
        f(&mut a);
        credentials(Some(&a)).unwrap()
    }

    fn registry(auth: RegistryAuth) -> Credentials {
        Credentials::Registry(auth)
    }

    #[test]
    fn every_credential_form() {
        assert_eq!(
            credentials(None).unwrap(),
            registry(RegistryAuth::Anonymous)
        );
        assert_eq!(auth(|_| {}), registry(RegistryAuth::Anonymous));
        assert_eq!(
            auth(|a| {
                a.username = "u".into();
                a.password = "p".into();
            }),
            registry(RegistryAuth::Basic("u".into(), "p".into()))
        );
        assert_eq!(
            auth(|a| a.auth = "dTpwOng=".into()), // u:p:x
            registry(RegistryAuth::Basic("u".into(), "p:x".into()))
        );
        assert_eq!(
            auth(|a| a.registry_token = "t".into()),
            registry(RegistryAuth::Bearer("t".into()))
        );
        assert_eq!(
            auth(|a| {
                a.username = "u".into();
                a.identity_token = "r".into();
            }),
            Credentials::IdentityToken("r".into())
        );
        let a = AuthConfig {
            auth: "!!".into(),
            ..Default::default()
        };
        assert!(credentials(Some(&a)).is_err());
    }

    #[test]
    fn bearer_challenges() {
        assert_eq!(
            bearer_challenge(
                r#"Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull""#
            ),
            Some((
                "https://auth.example/token".into(),
                Some("reg.example".into())
            ))
        );
        assert_eq!(
            bearer_challenge(r#"bearer service=svc, realm="http://h/t?x=\"y\"""#),
            Some(("http://h/t?x=\"y\"".into(), Some("svc".into())))
        );
        assert_eq!(
            bearer_challenge(r#"Bearer realm=http://h/t"#),
            Some(("http://h/t".into(), None))
        );
        assert_eq!(bearer_challenge(r#"Basic realm="r""#), None);
        assert_eq!(bearer_challenge(r#"Bearer service="s""#), None);
    }

    #[test]
    fn form_encoding() {
        assert_eq!(
            form_encode(&[("scope", "repository:a/b:pull"), ("t", "x y+z~")]),
            "scope=repository%3Aa%2Fb%3Apull&t=x%20y%2Bz~"
        );
    }
}
