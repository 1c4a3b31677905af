//! The files of a ConfigMap or a Secret (upstream's configmap.MakePayload and
//! secret.MakePayload): every key when no items are listed, else exactly the listed keys.

use super::{FileProjection, Payload, file_mode};
use crate::error::SetupError;
use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Secret};

pub(crate) fn config_map(
    items: Option<&[KeyToPath]>,
    cm: &ConfigMap,
    default_mode: u32,
    optional: bool,
) -> Result<Payload, SetupError> {
    let text = cm.data.iter().flatten().map(|(k, v)| (k, v.as_bytes()));
    let binary = cm.binary_data.iter().flatten().map(|(k, v)| (k, &v.0[..]));
    let all: Vec<(&String, &[u8])> = text.chain(binary).collect();
    project(items, &all, default_mode, optional, |key| {
        SetupError::MissingConfigMapKey(key.to_owned())
    })
}

/// Only `data`: the API server folds `stringData` into it.
pub(crate) fn secret(
    items: Option<&[KeyToPath]>,
    secret: &Secret,
    default_mode: u32,
    optional: bool,
) -> Result<Payload, SetupError> {
    let all: Vec<(&String, &[u8])> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k, &v.0[..]))
        .collect();
    project(items, &all, default_mode, optional, |key| {
        SetupError::MissingSecretKey(key.to_owned())
    })
}

fn project(
    items: Option<&[KeyToPath]>,
    all: &[(&String, &[u8])],
    default_mode: u32,
    optional: bool,
    missing: impl Fn(&str) -> SetupError,
) -> Result<Payload, SetupError> {
    let file = |data: &[u8], mode: u32| FileProjection {
        data: data.to_vec(),
        mode,
    };
    let Some(items) = items.filter(|i| !i.is_empty()) else {
        return Ok(all
            .iter()
            .map(|(key, data)| ((*key).clone(), file(data, default_mode)))
            .collect());
    };
    let mut payload = Payload::new();
    for item in items {
        let Some((_, data)) = all.iter().find(|(key, _)| **key == item.key) else {
            if optional {
                continue;
            }
            return Err(missing(&item.key));
        };
        let mode = file_mode(item.mode, default_mode)?;
        payload.insert(item.path.clone(), file(data, mode));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn cm() -> ConfigMap {
        ConfigMap {
            data: Some(BTreeMap::from([("a".into(), "text".into())])),
            binary_data: Some(BTreeMap::from([("b".into(), ByteString(vec![0, 255]))])),
            ..Default::default()
        }
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
        }
    }

    #[test]
    fn every_key_with_the_default_mode_without_items() {
        let payload = config_map(None, &cm(), 0o644, false).unwrap();
        assert_eq!(payload.len(), 2);
        assert_eq!(payload["a"].data, b"text");
        assert_eq!(payload["b"].data, [0, 255]);
        assert!(payload.values().all(|f| f.mode == 0o644));
    }

    #[test]
    fn items_choose_keys_paths_and_modes() {
        let items = [item("b", "bin/b.dat", Some(0o400)), item("a", "x", None)];
        let payload = config_map(Some(&items), &cm(), 0o640, false).unwrap();
        assert_eq!(
            payload.keys().collect::<Vec<_>>(),
            ["bin/b.dat", "x"].iter().collect::<Vec<_>>()
        );
        assert_eq!(payload["bin/b.dat"].mode, 0o400);
        assert_eq!(payload["x"].mode, 0o640);
    }

    #[test]
    fn a_missing_key_fails_unless_optional() {
        let items = [item("a", "a", None), item("nope", "n", None)];
        assert_eq!(
            config_map(Some(&items), &cm(), 0o644, false)
                .unwrap_err()
                .to_string(),
            "configmap references non-existent config key: nope"
        );
        let payload = config_map(Some(&items), &cm(), 0o644, true).unwrap();
        assert_eq!(payload.keys().collect::<Vec<_>>(), ["a"]);
        let s = Secret::default();
        assert_eq!(
            secret(Some(&items), &s, 0o644, false)
                .unwrap_err()
                .to_string(),
            "secret references non-existent secret key: a"
        );
    }

    #[test]
    fn an_invalid_item_mode_is_refused() {
        let items = [item("a", "a", Some(0o1777))];
        assert!(matches!(
            config_map(Some(&items), &cm(), 0o644, false),
            Err(SetupError::InvalidMode(0o1777))
        ));
    }
}
