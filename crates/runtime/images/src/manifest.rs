//! Manifests, image indexes (manifest lists) and configs, Docker v2 and OCI alike: the two
//! formats share their JSON shape, so one set of types reads both.

use crate::error::ImageError;
use crate::reference::is_digest;
use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// What a pull asks the registry for, in order of preference.
pub(crate) const ACCEPTED: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Platform {
    pub architecture: String,
    pub os: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Index {
    pub manifests: Vec<Descriptor>,
}

/// A manifest or an index, told apart by its media type (or, without one, by its fields).
pub(crate) enum Parsed {
    Index(Index),
    Manifest(Manifest),
}

pub(crate) fn parse(bytes: &[u8], digest: &str) -> Result<Parsed, ImageError> {
    let invalid = |cause: String| ImageError::Invalid {
        what: "manifest",
        digest: digest.to_string(),
        cause,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    if value.get("schemaVersion").and_then(|v| v.as_u64()) != Some(2) {
        return Err(invalid(
            "only schema version 2 manifests are supported".into(),
        ));
    }
    let media_type = value
        .get("mediaType")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let is_index = match media_type {
        OCI_INDEX | DOCKER_LIST => true,
        OCI_MANIFEST | DOCKER_MANIFEST => false,
        "" => value.get("manifests").is_some(),
        other => {
            return Err(ImageError::Unsupported {
                what: "manifest",
                media_type: other.to_string(),
            });
        }
    };
    let parsed = if is_index {
        Parsed::Index(serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?)
    } else {
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        for layer in &manifest.layers {
            if !LAYER_TYPES.contains(&layer.media_type.as_str()) {
                return Err(ImageError::Unsupported {
                    what: "layer",
                    media_type: layer.media_type.clone(),
                });
            }
        }
        Parsed::Manifest(manifest)
    };
    let digests_ok = match &parsed {
        Parsed::Index(i) => i.manifests.iter().all(|d| is_digest(&d.digest)),
        Parsed::Manifest(m) => {
            is_digest(&m.config.digest) && m.layers.iter().all(|d| is_digest(&d.digest))
        }
    };
    if !digests_ok {
        return Err(invalid(
            "a descriptor digest is not sha256:<64 hex digits>".into(),
        ));
    }
    Ok(parsed)
}

/// The linux/amd64 entry of an index (this node's platform).
pub(crate) fn select_platform<'a>(
    index: &'a Index,
    index_digest: &str,
) -> Result<&'a Descriptor, ImageError> {
    index
        .manifests
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        })
        .ok_or_else(|| ImageError::NoPlatform {
            digest: index_digest.to_string(),
        })
}

/// Parses an image config and checks that it lists one diff id per layer.
pub(crate) fn parse_config(
    bytes: &[u8],
    digest: &str,
    layers: usize,
) -> Result<ImageConfiguration, ImageError> {
    let invalid = |cause: String| ImageError::Invalid {
        what: "image config",
        digest: digest.to_string(),
        cause,
    };
    let config: ImageConfiguration =
        serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != layers {
        return Err(invalid(format!(
            "{} diff ids for {layers} layers",
            diff_ids.len()
        )));
    }
    if let Some(bad) = diff_ids.iter().find(|d| !is_digest(d)) {
        return Err(invalid(format!("diff id {bad:?} is not a sha256 digest")));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: char) -> String {
        format!("sha256:{}", n.to_string().repeat(64))
    }

    #[test]
    fn docker_and_oci_manifests_and_lists() {
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[
            {{"mediaType":"{DOCKER_MANIFEST}","digest":"{}","size":1,"platform":{{"architecture":"arm64","os":"linux"}}}},
            {{"mediaType":"{DOCKER_MANIFEST}","digest":"{}","size":2,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            d('a'),
            d('b')
        );
        let Parsed::Index(index) = parse(list.as_bytes(), "x").unwrap() else {
            panic!("not an index")
        };
        assert_eq!(select_platform(&index, "x").unwrap().digest, d('b'));

        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":3}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"{}","size":4}}]}}"#,
            d('c'),
            d('e')
        );
        let Parsed::Manifest(m) = parse(manifest.as_bytes(), "y").unwrap() else {
            panic!("not a manifest")
        };
        assert_eq!(m.layers[0].size, 4);
    }

    #[test]
    fn no_amd64_entry_and_unknown_layer_types_are_errors() {
        let list = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#,
            d('a')
        );
        let Parsed::Index(index) = parse(list.as_bytes(), "x").unwrap() else {
            panic!()
        };
        assert!(matches!(
            select_platform(&index, "x"),
            Err(ImageError::NoPlatform { .. })
        ));
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}","size":1}},"layers":[{{"mediaType":"application/x-tar+lz4","digest":"{}","size":1}}]}}"#,
            d('a'),
            d('b')
        );
        assert!(matches!(
            parse(m.as_bytes(), "y"),
            Err(ImageError::Unsupported { what: "layer", .. })
        ));
        assert!(parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, "z").is_err());
    }
}
