//! The volume manager: a pod's volumes set up before its containers start, each container's
//! mounts resolved from them, and everything removed when the pod is gone.

use crate::claims::{ClaimMount, ClaimVolumes, NoClaims};
use crate::devices::{self, HostDevice};
use crate::empty_dir::{self, Medium, Undo};
use crate::error::{MountError, PathIo, SetupError, VolumeError};
use crate::fs_group::{self, FsGroup};
use crate::layout::{self, EMPTY_DIR_PLUGIN, PodDir};
use crate::projection::{self, Context, Payload, Projection, ResourceList, atomic_writer};
use crate::source::{self, Source};
use crate::token::TokenCache;
use crate::{HostMount, Propagation, cleanup, host_path, node, subpath};
use k8s_openapi::api::core::v1::{Container, HostPathVolumeSource, Pod, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kubelet_objects::{NoApi, ObjectSource};
use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Sets up and tears down pod volumes under the kubelet root dir.
#[derive(Clone)]
pub struct VolumeManager {
    root_dir: PathBuf,
    objects: Arc<dyn ObjectSource>,
    claims: Arc<dyn ClaimVolumes>,
    tokens: Arc<TokenCache>,
    node_allocatable: Arc<RwLock<Option<ResourceList>>>,
}

impl std::fmt::Debug for VolumeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeManager")
            .field("root_dir", &self.root_dir)
            .finish_non_exhaustive()
    }
}

/// One set-up volume of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedVolume {
    pub host_path: PathBuf,
    /// Read-only for every container, whatever its volumeMount says: configMap, secret,
    /// downwardAPI and projected volumes, as upstream forces.
    pub read_only: bool,
    /// A raw block device, for containers' volumeDevices ([`ClaimMount::block`]).
    pub block: bool,
}

/// A pod's set-up volumes by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodVolumes {
    volumes: BTreeMap<String, MountedVolume>,
    update_errors: BTreeMap<String, String>,
}

impl PodVolumes {
    pub fn get(&self, name: &str) -> Option<&MountedVolume> {
        self.volumes.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &MountedVolume)> {
        self.volumes
            .iter()
            .map(|(name, volume)| (name.as_str(), volume))
    }

    pub fn len(&self) -> usize {
        self.volumes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.volumes.is_empty()
    }

    /// (volume, cause) of the volumes set up earlier whose update failed this time: they keep
    /// their previous contents and the pod runs on (upstream reports these as FailedMount
    /// events without stopping the pod).
    pub fn update_errors(&self) -> impl Iterator<Item = (&str, &str)> {
        self.update_errors
            .iter()
            .map(|(name, cause)| (name.as_str(), cause.as_str()))
    }
}

/// What setting a volume up takes, once everything was checked and fetched.
enum Step<'a> {
    EmptyDir(Medium),
    HostPath(&'a HostPathVolumeSource),
    /// The volume's directory, where it lives, and its contents.
    Projection(PathBuf, Medium, Fetched),
    /// Set up already, by the claim volumes.
    Claim(ClaimMount),
}

/// A projected volume's payload as computed for this sync.
enum Fetched {
    Ready(Payload),
    /// The update failed for a volume that already has contents: they stay as they are.
    Stale(SetupError),
}

impl VolumeManager {
    /// A manager without an API server: configMap, secret and token volumes fail with
    /// "no kubeClient defined"; see [`VolumeManager::with_objects`].
    pub fn new(root_dir: PathBuf) -> Self {
        Self {
            root_dir,
            objects: Arc::new(NoApi),
            claims: Arc::new(NoClaims),
            tokens: Arc::default(),
            node_allocatable: Arc::default(),
        }
    }

    /// The pod tokens cache, shared with the claim volumes (CSI drivers' token requests).
    pub fn with_tokens(mut self, tokens: Arc<TokenCache>) -> Self {
        self.tokens = tokens;
        self
    }

    /// Where ConfigMaps, Secrets and service account tokens come from.
    pub fn with_objects(mut self, objects: Arc<dyn ObjectSource>) -> Self {
        self.objects = objects;
        self
    }

    /// Who sets up and tears down persistentVolumeClaim volumes.
    pub fn with_claims(mut self, claims: Arc<dyn ClaimVolumes>) -> Self {
        self.claims = claims;
        self
    }

    /// The node's allocatable resources (the Node status figures), which downward API
    /// `limits.*` items read for containers without that limit. Until set, the machine's
    /// capacity is used.
    pub fn set_node_allocatable(&self, allocatable: BTreeMap<String, Quantity>) {
        *self.node_allocatable.write().unwrap() = Some(allocatable);
    }

    fn node_allocatable(&self) -> ResourceList {
        let set = self.node_allocatable.read().unwrap().clone();
        set.unwrap_or_else(|| node::machine_capacity(&self.root_dir))
    }

    pub fn root_dir(&self) -> &Path {
        &self.root_dir
    }

    /// Sets up every volume of the pod, or brings it up to date when it is set up already
    /// (configMap, secret, downwardAPI and projected contents are computed again and swapped in
    /// atomically when they changed). All or nothing for what is new: when one fails, what this
    /// call set up is taken back and the error names the volume and the cause. Volumes in place
    /// from an earlier call are kept; a failed update of one leaves its contents and is listed
    /// in [`PodVolumes::update_errors`].
    pub async fn mount_pod_volumes(&self, pod: &Pod) -> Result<PodVolumes, VolumeError> {
        let uid = pod_uid(pod);
        let dir = PodDir::new(&self.root_dir, uid)?;
        let declared = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or_default();
        // Check every volume and fetch what they show before touching the disk, so a pod with
        // an unsupported volume or a missing object leaves nothing behind.
        let plans = declared
            .iter()
            .map(|v| plan(v).map(|s| (v, s)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut steps = Vec::with_capacity(plans.len());
        for (volume, source) in plans {
            let failed = |cause: SetupError| {
                tracing::warn!(pod_uid = uid, volume = %volume.name, %cause, "volume setup failed");
                VolumeError::Volume {
                    volume: volume.name.clone(),
                    cause,
                }
            };
            let step = match source {
                Source::EmptyDir(medium) => Step::EmptyDir(medium),
                Source::HostPath(host) => Step::HostPath(host),
                Source::Projection(projection) => {
                    let path = dir.volume(projection.plugin_dir(), &volume.name);
                    let fetched = self.fetch(pod, projection, &path).await.map_err(failed)?;
                    Step::Projection(path, projection.medium(), fetched)
                }
                Source::Claim(claim) => Step::Claim(
                    self.claims
                        .set_up(pod, volume, claim)
                        .await
                        .map_err(|cause| failed(SetupError::Claim(cause)))?,
                ),
                Source::Csi(csi) => Step::Claim(
                    self.claims
                        .set_up_inline(pod, volume, csi)
                        .await
                        .map_err(|cause| failed(SetupError::Claim(cause)))?,
                ),
            };
            steps.push((volume, step));
        }

        let group = FsGroup::of(pod);
        let mut undo: Vec<Undo> = Vec::new();
        let mut mounted = PodVolumes::default();
        for (volume, step) in steps {
            let read_only = match &step {
                Step::Projection(..) => true,
                Step::Claim(claim) => claim.read_only,
                _ => false,
            };
            let block = matches!(&step, Step::Claim(claim) if claim.block);
            let host_path = match step {
                Step::EmptyDir(medium) => {
                    let path = dir.volume(EMPTY_DIR_PLUGIN, &volume.name);
                    set_up_empty_dir(&path, medium, group, &mut undo).map(|()| path)
                }
                Step::HostPath(host) => host_path::set_up(host),
                Step::Claim(claim) => Ok(claim.host_path),
                Step::Projection(path, medium, fetched) => {
                    set_up_projection(&path, medium, fetched, group, &mut undo).map(|stale| {
                        if let Some(cause) = stale {
                            tracing::warn!(pod_uid = uid, volume = %volume.name, %cause, "volume update failed, keeping its contents");
                            mounted
                                .update_errors
                                .insert(volume.name.clone(), cause.to_string());
                        }
                        path
                    })
                }
            };
            match host_path {
                Ok(host_path) => {
                    mounted.volumes.insert(
                        volume.name.clone(),
                        MountedVolume {
                            host_path,
                            read_only,
                            block,
                        },
                    );
                }
                Err(cause) => {
                    undo.into_iter().rev().for_each(Undo::run);
                    tracing::warn!(pod_uid = uid, volume = %volume.name, %cause, "volume setup failed");
                    return Err(VolumeError::Volume {
                        volume: volume.name.clone(),
                        cause,
                    });
                }
            }
        }
        tracing::debug!(pod_uid = uid, volumes = mounted.len(), "pod volumes set up");
        Ok(mounted)
    }

    /// The payload of a projected volume; a failure is only an error for a volume that has no
    /// contents yet.
    async fn fetch(
        &self,
        pod: &Pod,
        projection: Projection<'_>,
        path: &Path,
    ) -> Result<Fetched, SetupError> {
        let allocatable = || self.node_allocatable();
        let ctx = Context {
            objects: self.objects.as_ref(),
            tokens: &self.tokens,
            pod,
            allocatable: &allocatable,
            now: k8s_openapi::jiff::Timestamp::now(),
        };
        match projection::payload(projection, &ctx).await {
            Ok(payload) => Ok(Fetched::Ready(payload)),
            Err(cause) if atomic_writer::is_written(path) => Ok(Fetched::Stale(cause)),
            Err(cause) => Err(cause),
        }
    }

    /// The mounts of one container, in its volumeMounts order, subPaths resolved and pinned.
    pub fn container_mounts(
        &self,
        pod: &Pod,
        volumes: &PodVolumes,
        container: &Container,
    ) -> Result<Vec<HostMount>, VolumeError> {
        let dir = PodDir::new(&self.root_dir, pod_uid(pod))?;
        container
            .volume_mounts
            .iter()
            .flatten()
            .enumerate()
            .map(|(index, mount)| {
                host_mount(&dir, volumes, container, index, mount).map_err(|cause| {
                    VolumeError::Mount {
                        container: container.name.clone(),
                        mount: mount.name.clone(),
                        cause,
                    }
                })
            })
            .collect()
    }

    /// The devices of one container, in its volumeDevices order, from the pod's block volumes.
    pub fn container_devices(
        &self,
        volumes: &PodVolumes,
        container: &Container,
    ) -> Result<Vec<HostDevice>, VolumeError> {
        container
            .volume_devices
            .iter()
            .flatten()
            .map(|device| {
                devices::host_device(volumes, container, device).map_err(|cause| {
                    VolumeError::Device {
                        container: container.name.clone(),
                        device: device.name.clone(),
                        cause,
                    }
                })
            })
            .collect()
    }

    /// Unmounts and removes everything of the pod under ROOT/pods/<uid>, from what is on disk.
    /// Safe to repeat; a pod that has nothing on disk is already clean.
    pub fn cleanup_pod(&self, pod_uid: &str) -> Result<(), VolumeError> {
        let dir = PodDir::new(&self.root_dir, pod_uid)?;
        self.tokens.forget_pod(pod_uid);
        cleanup::remove_pod_dir(&dir, pod_uid)
    }

    /// Tears down the pod's claim volumes through their drivers, then everything else as
    /// [`Self::cleanup_pod`] does; nothing of the pod is removed while a claim volume is left.
    pub async fn tear_down_pod(&self, pod_uid: &str) -> Result<(), VolumeError> {
        PodDir::new(&self.root_dir, pod_uid)?;
        self.claims
            .tear_down(pod_uid)
            .await
            .map_err(|cause| VolumeError::Claims {
                uid: pod_uid.to_owned(),
                cause,
            })?;
        self.cleanup_pod(pod_uid)
    }

    /// UIDs of the pods that have a directory under ROOT/pods, sorted.
    pub fn pods_on_disk(&self) -> Result<Vec<String>, VolumeError> {
        let pods = layout::pods_dir(&self.root_dir);
        let entries = match fs::read_dir(&pods) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(PathIo::new("list", pods, e).into()),
        };
        let mut uids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| PathIo::new("list", &pods, e))?;
            let is_dir = entry
                .file_type()
                .map_err(|e| PathIo::new("inspect", entry.path(), e))?
                .is_dir();
            if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
                uids.push(name.to_owned());
            }
        }
        uids.sort();
        Ok(uids)
    }
}

fn pod_uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

fn plan(volume: &Volume) -> Result<Source<'_>, VolumeError> {
    let checked = if layout::is_single_component(&volume.name) {
        source::classify(volume)
    } else {
        Err(SetupError::InvalidName)
    };
    checked.map_err(|cause| VolumeError::Volume {
        volume: volume.name.clone(),
        cause,
    })
}

/// The emptyDir and, when it is new, its ownership for the pod's fsGroup (a directory in place
/// from an earlier sync got it then, and the walk would cost a pass over the user's data).
fn set_up_empty_dir(
    path: &Path,
    medium: Medium,
    group: Option<FsGroup>,
    undo: &mut Vec<Undo>,
) -> Result<(), SetupError> {
    let steps = empty_dir::set_up(path, medium)?;
    if let Some(group) = group
        && !steps.is_empty()
        && let Err(e) = fs_group::set_ownership(path, group, false)
    {
        steps.into_iter().rev().for_each(Undo::run);
        return Err(e.into());
    }
    undo.extend(steps);
    Ok(())
}

/// The volume's directory (a tmpfs for secrets) and its payload written into it, given to the
/// pod's fsGroup when it changed. Returns the cause when an update of existing contents failed
/// and they were kept.
fn set_up_projection(
    path: &Path,
    medium: Medium,
    fetched: Fetched,
    group: Option<FsGroup>,
    undo: &mut Vec<Undo>,
) -> Result<Option<SetupError>, SetupError> {
    let had_contents = atomic_writer::is_written(path);
    let steps: Vec<Undo> = empty_dir::set_up(path, medium)?
        .into_iter()
        .map(|step| match step {
            Undo::RemoveDir(dir) => Undo::RemoveTree(dir),
            other => other,
        })
        .collect();
    let written = match fetched {
        Fetched::Ready(payload) => atomic_writer::write(path, &payload).and_then(|changed| {
            match group {
                Some(group) if changed => fs_group::set_ownership(path, group, true)?,
                _ => {}
            }
            Ok(None)
        }),
        Fetched::Stale(cause) => Ok(Some(cause)),
    };
    match written {
        Ok(stale) => {
            undo.extend(steps);
            Ok(stale)
        }
        Err(cause) if had_contents => Ok(Some(cause)),
        Err(cause) => {
            steps.into_iter().rev().for_each(Undo::run);
            Err(cause)
        }
    }
}

fn host_mount(
    dir: &PodDir,
    volumes: &PodVolumes,
    container: &Container,
    index: usize,
    mount: &VolumeMount,
) -> Result<HostMount, MountError> {
    let volume = volumes
        .get(&mount.name)
        .ok_or_else(|| MountError::MissingVolume(mount.name.clone()))?;
    let propagation = propagation(mount.mount_propagation.as_deref())?;
    let host_path = match subpath::sub_path_of(mount, container)? {
        None => volume.host_path.clone(),
        Some(sub_path) => {
            if !layout::is_single_component(&container.name) {
                return Err(MountError::InvalidContainerName(container.name.clone()));
            }
            let target = dir.subpath_mount(&mount.name, &container.name, index);
            subpath::bind(&volume.host_path, &sub_path, &target)?;
            target
        }
    };
    Ok(HostMount {
        container_path: mount.mount_path.clone(),
        host_path,
        read_only: mount.read_only.unwrap_or(false) || volume.read_only,
        propagation,
    })
}

fn propagation(mode: Option<&str>) -> Result<Propagation, MountError> {
    match mode {
        None | Some("None") => Ok(Propagation::None),
        Some("HostToContainer") => Ok(Propagation::HostToContainer),
        Some("Bidirectional") => Ok(Propagation::Bidirectional),
        Some(other) => Err(MountError::InvalidPropagation(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagation_modes() {
        assert_eq!(propagation(None).unwrap(), Propagation::None);
        assert_eq!(propagation(Some("None")).unwrap(), Propagation::None);
        assert_eq!(
            propagation(Some("HostToContainer")).unwrap(),
            Propagation::HostToContainer
        );
        assert_eq!(
            propagation(Some("Bidirectional")).unwrap(),
            Propagation::Bidirectional
        );
        assert_eq!(
            propagation(Some("Shared")).unwrap_err().to_string(),
            "invalid MountPropagation mode: \"Shared\""
        );
    }

    #[test]
    fn volume_devices_come_from_block_volumes_only() {
        let manager = VolumeManager::new(PathBuf::from("/r"));
        let mut volumes = PodVolumes::default();
        for (name, read_only, block) in [
            ("raw", false, true),
            ("ro", true, true),
            ("fs", false, false),
        ] {
            let host_path = PathBuf::from(format!("/dev/{name}"));
            let volume = MountedVolume {
                host_path,
                read_only,
                block,
            };
            volumes.volumes.insert(name.to_string(), volume);
        }
        let container = |devices: &[(&str, &str)]| Container {
            name: "app".into(),
            volume_devices: Some(
                devices
                    .iter()
                    .map(|(name, path)| k8s_openapi::api::core::v1::VolumeDevice {
                        name: name.to_string(),
                        device_path: path.to_string(),
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        let found = manager
            .container_devices(
                &volumes,
                &container(&[("raw", "/dev/xvda"), ("ro", "/dev/xvdb")]),
            )
            .unwrap();
        let expected = [
            ("/dev/xvda", "/dev/raw", "mrw"),
            ("/dev/xvdb", "/dev/ro", "r"),
        ]
        .map(|(c, h, permissions)| HostDevice {
            container_path: c.into(),
            host_path: h.into(),
            permissions,
        });
        assert_eq!(found, expected);
        let refused = |devices| {
            manager
                .container_devices(&volumes, &container(devices))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refused(&[("fs", "/dev/xvda")]),
            "volumeDevice \"fs\" of container \"app\": cannot find volume \"fs\" to pass into container \"app\""
        );
        assert_eq!(
            refused(&[("none", "/dev/xvda")]),
            "volumeDevice \"none\" of container \"app\": cannot find volume \"none\" to pass into container \"app\""
        );
        assert_eq!(
            refused(&[("raw", "dev/xvda")]),
            "volumeDevice \"raw\" of container \"app\": error DevicePath `dev/xvda` must be an absolute path"
        );
    }
}
