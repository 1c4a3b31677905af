//! Shared test fixtures: a kubelet root in a temp dir that unmounts whatever a test mounted
//! below it when dropped (even when an assertion failed), and pod builders.
#![allow(dead_code)] // each test binary uses a different part of this module

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, HostPathVolumeSource, Pod, PodSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kubelet_volumes::{PodVolumes, VolumeError, VolumeManager};
use nix::mount::MntFlags;
use std::path::{Path, PathBuf};

pub const UID: &str = "0b7c1c2e-5d1a-4f59-9a7e-6c1d2f3a4b5c";

pub struct TestRoot {
    dir: tempfile::TempDir,
    pub manager: VolumeManager,
}

impl TestRoot {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("kubelet-volumes-")
            .tempdir_in("/tmp")
            .unwrap();
        let manager = VolumeManager::new(dir.path().join("root"));
        Self { dir, manager }
    }

    /// A root whose manager reads ConfigMaps, Secrets and tokens from `objects`.
    pub fn with_objects(objects: &kubelet_objects::FakeObjects) -> Self {
        let mut root = Self::new();
        root.manager = root
            .manager
            .clone()
            .with_objects(std::sync::Arc::new(objects.clone()));
        root
    }

    /// A scratch dir beside the kubelet root: "outside of every volume".
    pub fn outside(&self) -> PathBuf {
        let path = self.dir.path().join("outside");
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn pod_dir(&self) -> PathBuf {
        self.dir.path().join("root/pods").join(UID)
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        let base = std::fs::canonicalize(self.dir.path()).unwrap();
        for _ in 0..8 {
            let mut points: Vec<PathBuf> = mount_points()
                .into_iter()
                .filter(|p| p.starts_with(&base))
                .collect();
            if points.is_empty() {
                break;
            }
            points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for p in points {
                let _ = nix::mount::umount2(&p, MntFlags::MNT_DETACH);
            }
        }
    }
}

/// mount_pod_volumes for tests that are not async themselves.
pub trait MountBlocking {
    fn mount_blocking(&self, pod: &Pod) -> Result<PodVolumes, VolumeError>;
}

impl MountBlocking for VolumeManager {
    fn mount_blocking(&self, pod: &Pod) -> Result<PodVolumes, VolumeError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(self.mount_pod_volumes(pod))
    }
}

/// Mount points in this namespace (test dirs have no characters the kernel escapes).
pub fn mount_points() -> Vec<PathBuf> {
    mount_lines()
        .iter()
        .map(|fields| PathBuf::from(&fields[4]))
        .collect()
}

/// Each mountinfo line split into fields.
pub fn mount_lines() -> Vec<Vec<String>> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|l| l.split(' ').map(str::to_owned).collect())
        .collect()
}

/// (fs type, super options) of the mounts at exactly `path`.
pub fn mounts_at(path: &Path) -> Vec<(String, String)> {
    let path = std::fs::canonicalize(path).unwrap();
    mount_lines()
        .into_iter()
        .filter(|f| Path::new(&f[4]) == path)
        .map(|f| {
            let sep = f.iter().position(|x| x == "-").unwrap();
            (f[sep + 1].clone(), f[sep + 3].clone())
        })
        .collect()
}

pub fn pod(volumes: Vec<Volume>, containers: Vec<Container>) -> Pod {
    Pod {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some(UID.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            volumes: Some(volumes),
            containers,
            ..Default::default()
        }),
        status: None,
    }
}

pub fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

pub fn memory_dir(name: &str, size_limit: Option<&str>) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: size_limit.map(|s| Quantity(s.into())),
        }),
        ..Default::default()
    }
}

pub fn host_path(name: &str, path: &Path, type_: &str) -> Volume {
    Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource {
            path: path.display().to_string(),
            type_: Some(type_.into()),
        }),
        ..Default::default()
    }
}

pub fn container(name: &str, mounts: Vec<VolumeMount>) -> Container {
    Container {
        name: name.into(),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

pub fn mount(volume: &str, at: &str, sub_path: &str) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: at.into(),
        sub_path: Some(sub_path.to_owned()).filter(|s| !s.is_empty()),
        ..Default::default()
    }
}
