//! Registry credentials from a pod's image pull Secrets (upstream
//! pkg/credentialprovider/secrets and keyring).

pub mod docker_config;
pub mod keyring;

pub use docker_config::{Credential, DockerConfigError};
pub use keyring::Keyring;

use k8s_openapi::api::core::v1::Secret;

pub const SECRET_TYPE_DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
pub const SECRET_TYPE_DOCKERCFG: &str = "kubernetes.io/dockercfg";
pub const DOCKERCFG_KEY: &str = ".dockercfg";

/// The keyring of a pod's pull Secrets (upstream MakeDockerKeyring): Secrets of another type,
/// or without their key, add nothing; a Secret that does not parse fails the pull.
pub fn keyring_from_secrets(secrets: &[Secret]) -> Result<Keyring, DockerConfigError> {
    let mut keyring = Keyring::default();
    for secret in secrets {
        let data = |key: &str| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|b| b.0.as_slice())
                .filter(|b| !b.is_empty())
        };
        let kind = secret.type_.as_deref().unwrap_or_default();
        if let (SECRET_TYPE_DOCKER_CONFIG_JSON, Some(bytes)) = (kind, data(DOCKER_CONFIG_JSON_KEY))
        {
            keyring.add(docker_config::parse_config_json(bytes)?);
        } else if let (SECRET_TYPE_DOCKERCFG, Some(bytes)) = (kind, data(DOCKERCFG_KEY)) {
            keyring.add(docker_config::parse_dockercfg(bytes)?);
        }
    }
    Ok(keyring)
}

/// The repository an image is pulled from, normalised as the docker reference library does
/// (upstream ParseImageName): tag and digest dropped, `docker.io` (and `library/`) added to
/// Docker Hub names, `index.docker.io` read as `docker.io`.
pub fn repository(image: &str) -> String {
    let name = image.split('@').next().unwrap_or_default();
    let (domain, remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first, rest)
        }
        _ => ("docker.io", name),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let path = remainder.split(':').next().unwrap_or_default();
    if domain == "docker.io" && !path.contains('/') {
        format!("{domain}/library/{path}")
    } else {
        format!("{domain}/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    #[test]
    fn repositories() {
        for (image, want) in [
            ("busybox", "docker.io/library/busybox"),
            ("busybox:1.35", "docker.io/library/busybox"),
            ("user/app@sha256:abc", "docker.io/user/app"),
            ("index.docker.io/user/app:1", "docker.io/user/app"),
            ("docker.io/busybox", "docker.io/library/busybox"),
            ("localhost:5000/app:1", "localhost:5000/app"),
            ("localhost/app", "localhost/app"),
            ("registry.test/team/app:v2", "registry.test/team/app"),
        ] {
            assert_eq!(repository(image), want, "{image}");
        }
    }

    fn secret(kind: &str, key: &str, value: serde_json::Value) -> Secret {
        Secret {
            type_: Some(kind.into()),
            data: Some(BTreeMap::from([(
                key.to_string(),
                ByteString(value.to_string().into_bytes()),
            )])),
            ..Default::default()
        }
    }

    #[test]
    fn keyring_from_both_secret_types() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let secrets = [
            secret(
                SECRET_TYPE_DOCKER_CONFIG_JSON,
                DOCKER_CONFIG_JSON_KEY,
                serde_json::json!({"auths": {"registry.test:5000": {"auth": b64("a:1")}}}),
            ),
            secret(
                SECRET_TYPE_DOCKERCFG,
                DOCKERCFG_KEY,
                serde_json::json!({"registry.test:5000": {"username": "b", "password": "2"}}),
            ),
            // The wrong type for its key: ignored.
            secret(
                "Opaque",
                DOCKER_CONFIG_JSON_KEY,
                serde_json::json!({"auths": {"registry.test:5000": {"username": "c"}}}),
            ),
        ];
        let keyring = keyring_from_secrets(&secrets).unwrap();
        let users: Vec<_> = keyring
            .lookup("registry.test:5000/app")
            .into_iter()
            .map(|c| (c.username, c.password))
            .collect();
        assert_eq!(
            users,
            [("a".to_string(), "1".to_string()), ("b".into(), "2".into())]
        );
        let broken = secret(
            SECRET_TYPE_DOCKER_CONFIG_JSON,
            DOCKER_CONFIG_JSON_KEY,
            serde_json::json!({"auths": {"r": {"auth": b64("nocolon")}}}),
        );
        assert_eq!(
            keyring_from_secrets(&[broken]).unwrap_err(),
            DockerConfigError::AuthFormat
        );
    }
}
