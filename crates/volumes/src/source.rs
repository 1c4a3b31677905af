//! Which kind of volume a pod declares, and whether this kubelet can set it up yet. Everything
//! that can be checked without touching the disk is checked here, so a bad pod fails before any
//! setup starts.

use crate::empty_dir::Medium;
use crate::error::SetupError;
use crate::projection::Projection;
use k8s_openapi::api::core::v1::{
    CSIVolumeSource, HostPathVolumeSource, PersistentVolumeClaimVolumeSource, Volume,
};

#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    EmptyDir(Medium),
    HostPath(&'a HostPathVolumeSource),
    Projection(Projection<'a>),
    Claim(&'a PersistentVolumeClaimVolumeSource),
    /// A CSI ephemeral inline volume.
    Csi(&'a CSIVolumeSource),
}

pub(crate) fn classify(volume: &Volume) -> Result<Source<'_>, SetupError> {
    if let Some(host_path) = &volume.host_path {
        return Ok(Source::HostPath(host_path));
    }
    let projection = if let Some(cm) = &volume.config_map {
        Some(Projection::ConfigMap(cm))
    } else if let Some(secret) = &volume.secret {
        Some(Projection::Secret(secret))
    } else if let Some(downward) = &volume.downward_api {
        Some(Projection::DownwardApi(downward))
    } else {
        volume.projected.as_ref().map(Projection::Projected)
    };
    if let Some(projection) = projection {
        projection.check()?;
        return Ok(Source::Projection(projection));
    }
    if let Some(claim) = &volume.persistent_volume_claim {
        return Ok(Source::Claim(claim));
    }
    if let Some(csi) = &volume.csi {
        return Ok(Source::Csi(csi));
    }
    if volume.empty_dir.is_some() {
        return Ok(Source::EmptyDir(Medium::of(volume.empty_dir.as_ref())?));
    }
    match declared_type(volume) {
        Some(kind) => Err(SetupError::Unsupported(kind)),
        // The API server defaults a volume without a source to an emptyDir; a static pod's
        // manifest may skip that defaulting, so do the same here.
        None => Ok(Source::EmptyDir(Medium::Disk)),
    }
}

/// The API name of the volume's source field (configMap, persistentVolumeClaim, ...), read from
/// the serialized form so every current and future source type is named as users write it.
fn declared_type(volume: &Volume) -> Option<String> {
    match serde_json::to_value(volume).ok()? {
        serde_json::Value::Object(fields) => {
            fields.into_iter().map(|(k, _)| k).find(|k| k != "name")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapVolumeSource, PersistentVolumeClaimVolumeSource, ProjectedVolumeSource,
        VolumeProjection,
    };

    #[test]
    fn names_unsupported_types_as_the_api_does() {
        let cfg = Volume {
            name: "cfg".into(),
            config_map: Some(ConfigMapVolumeSource::default()),
            ..Default::default()
        };
        assert!(matches!(
            classify(&cfg),
            Ok(Source::Projection(Projection::ConfigMap(_)))
        ));
        let bundle = Volume {
            name: "ca".into(),
            projected: Some(ProjectedVolumeSource {
                default_mode: None,
                sources: Some(vec![VolumeProjection {
                    cluster_trust_bundle: Some(Default::default()),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        };
        assert_eq!(
            classify(&bundle).unwrap_err().to_string(),
            "volume type projected clusterTrustBundle is not supported yet"
        );
        let pvc = Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: "c".into(),
                read_only: None,
            }),
            ..Default::default()
        };
        assert!(matches!(classify(&pvc), Ok(Source::Claim(c)) if c.claim_name == "c"));
        let inline = Volume {
            name: "inline".into(),
            csi: Some(k8s_openapi::api::core::v1::CSIVolumeSource {
                driver: "d".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(classify(&inline), Ok(Source::Csi(c)) if c.driver == "d"));
        let iscsi = Volume {
            name: "disk".into(),
            iscsi: Some(Default::default()),
            ..Default::default()
        };
        assert!(matches!(classify(&iscsi), Err(SetupError::Unsupported(k)) if k == "iscsi"));
    }

    #[test]
    fn no_source_defaults_to_empty_dir() {
        let v = Volume {
            name: "scratch".into(),
            ..Default::default()
        };
        assert!(matches!(classify(&v), Ok(Source::EmptyDir(Medium::Disk))));
    }
}
