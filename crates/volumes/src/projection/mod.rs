//! Volumes whose files are projected from API objects and from the pod itself: configMap, secret,
//! downwardAPI and projected. Their payload is computed in memory first (so a missing object
//! fails a new pod before anything is on disk), then written with the atomic writer; every sync
//! computes it again, so changes reach running pods.

pub(crate) mod atomic_writer;
mod downward;
mod keys;

use crate::empty_dir::Medium;
use crate::error::SetupError;
use crate::layout;
use crate::token::TokenCache;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, DownwardAPIVolumeSource, Pod, ProjectedVolumeSource, Secret,
    SecretVolumeSource,
};
use k8s_openapi::jiff::Timestamp;
use kubelet_objects::{ObjectError, ObjectSource};
use std::collections::BTreeMap;

pub(crate) use downward::ResourceList;

/// The API's default for `defaultMode`.
const DEFAULT_MODE: u32 = 0o644;

/// One file of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Files by path relative to the volume.
pub(crate) type Payload = BTreeMap<String, FileProjection>;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Projection<'a> {
    ConfigMap(&'a ConfigMapVolumeSource),
    Secret(&'a SecretVolumeSource),
    DownwardApi(&'a DownwardAPIVolumeSource),
    Projected(&'a ProjectedVolumeSource),
}

impl Projection<'_> {
    pub(crate) fn plugin_dir(self) -> &'static str {
        match self {
            Projection::ConfigMap(_) => layout::CONFIG_MAP_PLUGIN,
            Projection::Secret(_) => layout::SECRET_PLUGIN,
            Projection::DownwardApi(_) => layout::DOWNWARD_API_PLUGIN,
            Projection::Projected(_) => layout::PROJECTED_PLUGIN,
        }
    }

    /// Secrets and tokens live in memory only (upstream wraps these in a memory-backed emptyDir).
    pub(crate) fn medium(self) -> Medium {
        match self {
            Projection::Secret(_) | Projection::Projected(_) => Medium::Memory { size_limit: None },
            Projection::ConfigMap(_) | Projection::DownwardApi(_) => Medium::Disk,
        }
    }

    /// What can be refused without fetching anything.
    pub(crate) fn check(self) -> Result<(), SetupError> {
        if let Projection::Projected(source) = self
            && source
                .sources
                .iter()
                .flatten()
                .any(|s| s.cluster_trust_bundle.is_some())
        {
            return Err(SetupError::Unsupported(
                "projected clusterTrustBundle".into(),
            ));
        }
        Ok(())
    }
}

/// What computing a payload needs besides the volume source.
pub(crate) struct Context<'a> {
    pub objects: &'a dyn ObjectSource,
    pub tokens: &'a TokenCache,
    pub pod: &'a Pod,
    pub allocatable: &'a (dyn Fn() -> ResourceList + Sync),
    pub now: Timestamp,
}

impl Context<'_> {
    fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The object, or nothing for a missing optional one.
    fn optional<T: Default>(
        fetched: Result<T, ObjectError>,
        optional: bool,
    ) -> Result<T, SetupError> {
        match fetched {
            Ok(object) => Ok(object),
            Err(e) if optional && e.is_not_found() => Ok(T::default()),
            Err(e) => Err(e.into()),
        }
    }

    async fn config_map(&self, name: &str, optional: bool) -> Result<ConfigMap, SetupError> {
        Self::optional(
            self.objects.config_map(self.namespace(), name).await,
            optional,
        )
    }

    async fn secret(&self, name: &str, optional: bool) -> Result<Secret, SetupError> {
        Self::optional(self.objects.secret(self.namespace(), name).await, optional)
    }
}

/// The files the volume shows now, paths validated.
pub(crate) async fn payload(
    projection: Projection<'_>,
    ctx: &Context<'_>,
) -> Result<Payload, SetupError> {
    let payload = match projection {
        Projection::ConfigMap(source) => {
            let optional = source.optional.unwrap_or(false);
            let cm = ctx.config_map(&source.name, optional).await?;
            let mode = file_mode(source.default_mode, DEFAULT_MODE)?;
            keys::config_map(source.items.as_deref(), &cm, mode, optional)?
        }
        Projection::Secret(source) => {
            let optional = source.optional.unwrap_or(false);
            let name = source.secret_name.as_deref().unwrap_or_default();
            let secret = ctx.secret(name, optional).await?;
            let mode = file_mode(source.default_mode, DEFAULT_MODE)?;
            keys::secret(source.items.as_deref(), &secret, mode, optional)?
        }
        Projection::DownwardApi(source) => {
            let mode = file_mode(source.default_mode, DEFAULT_MODE)?;
            let items = source.items.as_deref().unwrap_or_default();
            downward::payload(items, mode, ctx.pod, ctx.allocatable)?
        }
        Projection::Projected(source) => projected(source, ctx).await?,
    };
    atomic_writer::validate(payload)
}

/// upstream's projected collectData: every source in order, later files replacing earlier ones
/// at the same path, the errors of all failing sources together.
async fn projected(
    source: &ProjectedVolumeSource,
    ctx: &Context<'_>,
) -> Result<Payload, SetupError> {
    let default_mode = file_mode(source.default_mode, DEFAULT_MODE)?;
    let mut payload = Payload::new();
    let mut errors = Vec::new();
    for projection in source.sources.iter().flatten() {
        let part = if let Some(cm) = &projection.config_map {
            let optional = cm.optional.unwrap_or(false);
            match ctx.config_map(&cm.name, optional).await {
                Ok(object) => {
                    keys::config_map(cm.items.as_deref(), &object, default_mode, optional)
                }
                Err(e) => Err(e),
            }
        } else if let Some(secret) = &projection.secret {
            let optional = secret.optional.unwrap_or(false);
            match ctx.secret(&secret.name, optional).await {
                Ok(object) => {
                    keys::secret(secret.items.as_deref(), &object, default_mode, optional)
                }
                Err(e) => Err(e),
            }
        } else if let Some(downward) = &projection.downward_api {
            let items = downward.items.as_deref().unwrap_or_default();
            downward::payload(items, default_mode, ctx.pod, ctx.allocatable)
        } else if let Some(token) = &projection.service_account_token {
            ctx.tokens
                .token(
                    ctx.objects,
                    ctx.pod,
                    token.audience.as_deref(),
                    token.expiration_seconds,
                    ctx.now,
                )
                .await
                .map(|issued| {
                    let file = FileProjection {
                        data: issued.token.into_bytes(),
                        mode: default_mode,
                    };
                    Payload::from([(token.path.clone(), file)])
                })
        } else {
            Ok(Payload::new())
        };
        match part {
            Ok(files) => payload.extend(files),
            Err(e) => errors.push(e),
        }
    }
    SetupError::aggregate(errors).map_or(Ok(payload), Err)
}

/// A file mode from the API (0 to 0777), or `default` when unset.
pub(crate) fn file_mode(mode: Option<i32>, default: u32) -> Result<u32, SetupError> {
    match mode {
        None => Ok(default),
        Some(m) if (0..=0o777).contains(&m) => Ok(m as u32),
        Some(m) => Err(SetupError::InvalidMode(m)),
    }
}
