//! The volume manager: a pod's volumes set up before its containers start, each container's
//! mounts resolved from them, and everything removed when the pod is gone.

use crate::empty_dir::{self, Undo};
use crate::error::{MountError, PathIo, SetupError, VolumeError};
use crate::layout::{self, EMPTY_DIR_PLUGIN, PodDir};
use crate::source::{self, Source};
use crate::{HostMount, Propagation, cleanup, host_path, subpath};
use k8s_openapi::api::core::v1::{Container, Pod, Volume, VolumeMount};
use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Sets up and tears down pod volumes under the kubelet root dir.
#[derive(Debug, Clone)]
pub struct VolumeManager {
    root_dir: PathBuf,
}

/// One set-up volume of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedVolume {
    pub host_path: PathBuf,
    /// Read-only for every container, whatever its volumeMount says (no supported volume type
    /// sets it yet; kept for the types that will).
    pub read_only: bool,
}

/// A pod's set-up volumes by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodVolumes {
    volumes: BTreeMap<String, MountedVolume>,
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
}

impl VolumeManager {
    pub fn new(root_dir: PathBuf) -> Self {
        Self { root_dir }
    }

    pub fn root_dir(&self) -> &Path {
        &self.root_dir
    }

    /// Sets up every volume of the pod. All or nothing: when one fails, what this call set up
    /// is taken back and the error names the volume and the cause. Volumes already in place
    /// from an earlier call are kept as they are.
    pub fn mount_pod_volumes(&self, pod: &Pod) -> Result<PodVolumes, VolumeError> {
        let uid = pod_uid(pod);
        let dir = PodDir::new(&self.root_dir, uid)?;
        let declared = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or_default();
        // Check every volume before touching the disk, so a pod with an unsupported volume
        // leaves nothing behind.
        let plans = declared
            .iter()
            .map(|v| plan(v).map(|s| (v, s)))
            .collect::<Result<Vec<_>, _>>()?;

        let mut undo: Vec<Undo> = Vec::new();
        let mut mounted = PodVolumes::default();
        for (volume, source) in plans {
            let host_path = match source {
                Source::EmptyDir(medium) => {
                    let path = dir.volume(EMPTY_DIR_PLUGIN, &volume.name);
                    empty_dir::set_up(&path, medium).map(|steps| {
                        undo.extend(steps);
                        path
                    })
                }
                Source::HostPath(host) => host_path::set_up(host),
            };
            match host_path {
                Ok(host_path) => {
                    mounted.volumes.insert(
                        volume.name.clone(),
                        MountedVolume {
                            host_path,
                            read_only: false,
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

    /// Unmounts and removes everything of the pod under ROOT/pods/<uid>, from what is on disk.
    /// Safe to repeat; a pod that has nothing on disk is already clean.
    pub fn cleanup_pod(&self, pod_uid: &str) -> Result<(), VolumeError> {
        let dir = PodDir::new(&self.root_dir, pod_uid)?;
        cleanup::remove_pod_dir(&dir, pod_uid)
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
}
