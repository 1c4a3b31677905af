//! Docker credential files as image pull Secrets carry them (upstream
//! pkg/credentialprovider/config.go): `.dockerconfigjson` is `{"auths": {REGISTRY: ENTRY}}`,
//! the legacy `.dockercfg` is `{REGISTRY: ENTRY}`. Field names match case-insensitively, as Go's
//! encoding/json does.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use thiserror::Error;

/// One registry's credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
    pub identity_token: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DockerConfigError {
    #[error("invalid docker config: {0}")]
    Json(String),
    #[error("docker config field {field} must be a {expected}")]
    Type {
        field: String,
        expected: &'static str,
    },
    #[error("unable to decode auth field: {0}")]
    AuthBase64(String),
    #[error("unable to parse auth field, must be formatted as base64(username:password)")]
    AuthFormat,
}

/// The entries of a `.dockerconfigjson`, registry by registry.
pub fn parse_config_json(bytes: &[u8]) -> Result<Vec<(String, Credential)>, DockerConfigError> {
    let value = parse(bytes)?;
    match field(object(&value, "")?, "auths") {
        Some(auths) => entries(object(auths, "auths")?),
        None => Ok(Vec::new()),
    }
}

/// The entries of a legacy `.dockercfg`.
pub fn parse_dockercfg(bytes: &[u8]) -> Result<Vec<(String, Credential)>, DockerConfigError> {
    entries(object(&parse(bytes)?, "")?)
}

fn parse(bytes: &[u8]) -> Result<Value, DockerConfigError> {
    serde_json::from_slice(bytes).map_err(|e| DockerConfigError::Json(e.to_string()))
}

fn object<'v>(v: &'v Value, name: &str) -> Result<&'v Map<String, Value>, DockerConfigError> {
    v.as_object().ok_or_else(|| DockerConfigError::Type {
        field: name.to_owned(),
        expected: "JSON object",
    })
}

/// A field by exact name, else case-insensitively (Go's rule).
fn field<'v>(map: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn string(map: &Map<String, Value>, name: &str) -> Result<String, DockerConfigError> {
    match field(map, name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(DockerConfigError::Type {
            field: name.to_owned(),
            expected: "string",
        }),
    }
}

fn entries(
    registries: &Map<String, Value>,
) -> Result<Vec<(String, Credential)>, DockerConfigError> {
    registries
        .iter()
        .map(|(registry, entry)| {
            let entry = object(entry, registry)?;
            let mut cred = Credential {
                username: string(entry, "username")?,
                password: string(entry, "password")?,
                identity_token: string(entry, "identitytoken")?,
            };
            // `auth`, when present, is base64(username:password) and wins over the fields.
            let auth = string(entry, "auth")?;
            if !auth.is_empty() {
                (cred.username, cred.password) = decode_auth(&auth)?;
            }
            Ok((registry.clone(), cred))
        })
        .collect()
}

fn decode_auth(auth: &str) -> Result<(String, String), DockerConfigError> {
    let decoded = STANDARD
        .decode(auth)
        .map_err(|e| DockerConfigError::AuthBase64(e.to_string()))?;
    let decoded = String::from_utf8_lossy(&decoded);
    let (user, password) = decoded
        .split_once(':')
        .ok_or(DockerConfigError::AuthFormat)?;
    Ok((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(username: &str, password: &str) -> Credential {
        Credential {
            username: username.into(),
            password: password.into(),
            identity_token: String::new(),
        }
    }

    #[test]
    fn config_json_fields_and_auth() {
        let auth = STANDARD.encode("bob:s3:cret");
        let json = serde_json::json!({"auths": {
            "registry.test:5000": {"username": "alice", "password": "pw"},
            "quay.io": {"auth": auth, "username": "ignored"},
            "ghcr.io": {"Username": "carol", "Password": "x", "IdentityToken": "tok"},
        }});
        let mut got = parse_config_json(json.to_string().as_bytes()).unwrap();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            vec![
                (
                    "ghcr.io".into(),
                    Credential {
                        identity_token: "tok".into(),
                        ..cred("carol", "x")
                    }
                ),
                ("quay.io".into(), cred("bob", "s3:cret")),
                ("registry.test:5000".into(), cred("alice", "pw")),
            ]
        );
    }

    #[test]
    fn dockercfg_and_errors() {
        let json =
            serde_json::json!({"https://index.docker.io/v1/": {"auth": STANDARD.encode("u:p")}});
        assert_eq!(
            parse_dockercfg(json.to_string().as_bytes()).unwrap(),
            vec![("https://index.docker.io/v1/".into(), cred("u", "p"))]
        );
        assert_eq!(parse_config_json(b"{}").unwrap(), vec![]);
        assert!(matches!(
            parse_config_json(b"not json"),
            Err(DockerConfigError::Json(_))
        ));
        let no_colon = serde_json::json!({"auths": {"r": {"auth": STANDARD.encode("nocolon")}}});
        assert_eq!(
            parse_config_json(no_colon.to_string().as_bytes()),
            Err(DockerConfigError::AuthFormat)
        );
        let bad_b64 = serde_json::json!({"auths": {"r": {"auth": "!!"}}});
        assert!(matches!(
            parse_config_json(bad_b64.to_string().as_bytes()),
            Err(DockerConfigError::AuthBase64(_))
        ));
    }
}
