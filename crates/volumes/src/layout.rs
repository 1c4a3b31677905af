//! The on-disk layout under the kubelet root dir, as upstream has it, so tools and a restarted
//! kubelet find the same paths: ROOT/pods/<uid>/volumes/<plugin>/<name> and
//! ROOT/pods/<uid>/volume-subpaths/<volume>/<container>/<mount index>.

use crate::error::VolumeError;
use std::path::{Path, PathBuf};

pub(crate) const EMPTY_DIR_PLUGIN: &str = "kubernetes.io~empty-dir";
pub(crate) const CONFIG_MAP_PLUGIN: &str = "kubernetes.io~configmap";
pub(crate) const SECRET_PLUGIN: &str = "kubernetes.io~secret";
pub(crate) const DOWNWARD_API_PLUGIN: &str = "kubernetes.io~downward-api";
pub(crate) const PROJECTED_PLUGIN: &str = "kubernetes.io~projected";

/// True when `name` can be used as one path component: nothing that climbs or nests.
pub fn is_single_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

pub(crate) fn pods_dir(root: &Path) -> PathBuf {
    root.join("pods")
}

/// The directories of one pod.
#[derive(Debug, Clone)]
pub(crate) struct PodDir {
    path: PathBuf,
}

impl PodDir {
    pub(crate) fn new(root: &Path, uid: &str) -> Result<Self, VolumeError> {
        if !is_single_component(uid) {
            return Err(VolumeError::InvalidPodUid(uid.to_owned()));
        }
        Ok(Self {
            path: pods_dir(root).join(uid),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn volume(&self, plugin: &str, name: &str) -> PathBuf {
        self.path.join("volumes").join(plugin).join(name)
    }

    pub(crate) fn subpath_mount(&self, volume: &str, container: &str, index: usize) -> PathBuf {
        self.path
            .join("volume-subpaths")
            .join(volume)
            .join(container)
            .join(index.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_must_be_one_component() {
        for bad in ["", ".", "..", "a/b", "../x"] {
            assert!(
                PodDir::new(Path::new("/r"), bad).is_err(),
                "{bad:?} accepted"
            );
        }
        let dir = PodDir::new(Path::new("/r"), "1234-abcd").unwrap();
        assert_eq!(
            dir.volume(EMPTY_DIR_PLUGIN, "cache"),
            Path::new("/r/pods/1234-abcd/volumes/kubernetes.io~empty-dir/cache")
        );
        assert_eq!(
            dir.subpath_mount("cache", "app", 2),
            Path::new("/r/pods/1234-abcd/volume-subpaths/cache/app/2")
        );
    }
}
