//! Registry credentials from the CRI `AuthConfig`, as containerd reads them: a registry token is
//! sent as a bearer token; otherwise username and password (given apart, or as `auth`,
//! base64 of `user:pass`) go to the registry's Basic or token-server challenge; an identity
//! token is a refresh token that token servers accept as the password.

use crate::error::ImageError;
use base64::Engine as _;
use k8s_cri::v1::AuthConfig;
use oci_client::secrets::RegistryAuth;

/// The user name docker sends with an identity token.
const IDENTITY_TOKEN_USER: &str = "<token>";

pub(crate) fn registry_auth(auth: Option<&AuthConfig>) -> Result<RegistryAuth, ImageError> {
    let Some(auth) = auth else {
        return Ok(RegistryAuth::Anonymous);
    };
    if !auth.registry_token.is_empty() {
        return Ok(RegistryAuth::Bearer(auth.registry_token.clone()));
    }
    if !auth.identity_token.is_empty() {
        let user = if auth.username.is_empty() {
            IDENTITY_TOKEN_USER.to_string()
        } else {
            auth.username.clone()
        };
        return Ok(RegistryAuth::Basic(user, auth.identity_token.clone()));
    }
    if !auth.username.is_empty() {
        return Ok(RegistryAuth::Basic(
            auth.username.clone(),
            auth.password.clone(),
        ));
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
        return Ok(RegistryAuth::Basic(user.to_string(), pass.to_string()));
    }
    Ok(RegistryAuth::Anonymous)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(f: impl FnOnce(&mut AuthConfig)) -> RegistryAuth {
        let mut a = AuthConfig::default();
        f(&mut a);
        registry_auth(Some(&a)).unwrap()
    }

    #[test]
    fn every_credential_form() {
        assert_eq!(registry_auth(None).unwrap(), RegistryAuth::Anonymous);
        assert_eq!(auth(|_| {}), RegistryAuth::Anonymous);
        assert_eq!(
            auth(|a| {
                a.username = "u".into();
                a.password = "p".into();
            }),
            RegistryAuth::Basic("u".into(), "p".into())
        );
        assert_eq!(
            auth(|a| a.auth = "dTpwOng=".into()), // u:p:x
            RegistryAuth::Basic("u".into(), "p:x".into())
        );
        assert_eq!(
            auth(|a| a.registry_token = "t".into()),
            RegistryAuth::Bearer("t".into())
        );
        assert_eq!(
            auth(|a| a.identity_token = "r".into()),
            RegistryAuth::Basic("<token>".into(), "r".into())
        );
        let a = AuthConfig {
            auth: "!!".into(),
            ..Default::default()
        };
        assert!(registry_auth(Some(&a)).is_err());
    }
}
