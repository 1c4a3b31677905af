//! Volume ownership for a pod's `securityContext.fsGroup`, as upstream's SetVolumeOwnership
//! (pkg/volume/volume_linux.go): every entry gets the group, directories get setgid so new
//! files inherit it, and the group can read (and write, unless the volume is read-only) all of
//! it.

use crate::error::PathIo;
use k8s_openapi::api::core::v1::Pod;
use std::fs::{self, Metadata};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const RW_MASK: u32 = 0o660;
const RO_MASK: u32 = 0o440;
const EXEC_MASK: u32 = 0o110;
const SETGID: u32 = 0o2000;

/// The pod's fsGroup and whether its change policy is OnRootMismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsGroup {
    pub gid: u32,
    pub on_root_mismatch: bool,
}

impl FsGroup {
    /// None when the pod sets no fsGroup (or one that is not a valid group id).
    pub fn of(pod: &Pod) -> Option<Self> {
        let context = pod.spec.as_ref()?.security_context.as_ref()?;
        let gid = u32::try_from(context.fs_group?).ok()?;
        Some(Self {
            gid,
            on_root_mismatch: context.fs_group_change_policy.as_deref() == Some("OnRootMismatch"),
        })
    }
}

/// Gives the volume at `dir` to the group. Like upstream, a failed chown or chmod of one entry
/// is logged and the walk goes on; only a directory that cannot be read is an error.
pub fn set_ownership(dir: &Path, group: FsGroup, read_only: bool) -> Result<(), PathIo> {
    if group.on_root_mismatch && !needs_change(dir, group.gid, read_only) {
        tracing::debug!(path = %dir.display(), gid = group.gid, "volume root already owned by fsGroup, skipping");
        return Ok(());
    }
    walk(dir, group.gid, read_only)
}

/// Whether the root lacks the group, setgid, or the group's access (OnRootMismatch).
fn needs_change(root: &Path, gid: u32, read_only: bool) -> bool {
    let Ok(meta) = fs::metadata(root) else {
        return true;
    };
    let wanted = mask(read_only) | EXEC_MASK;
    meta.gid() != gid
        || !meta.is_dir()
        || meta.mode() & wanted != wanted
        || meta.mode() & SETGID == 0
}

fn mask(read_only: bool) -> u32 {
    if read_only { RO_MASK } else { RW_MASK }
}

/// Depth first, without following symlinks (an entry's own metadata, as Lstat).
fn walk(path: &Path, gid: u32, read_only: bool) -> Result<(), PathIo> {
    let meta = fs::symlink_metadata(path).map_err(|e| PathIo::new("inspect", path, e))?;
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(|e| PathIo::new("list", path, e))? {
            let entry = entry.map_err(|e| PathIo::new("list", path, e))?;
            walk(&entry.path(), gid, read_only)?;
        }
    }
    change(path, &meta, gid, read_only);
    Ok(())
}

fn change(path: &Path, meta: &Metadata, gid: u32, read_only: bool) {
    if let Err(error) = std::os::unix::fs::lchown(path, None, Some(gid)) {
        tracing::warn!(path = %path.display(), %error, "lchown failed");
    }
    // A chmod through a symlink would change its target with the link's meaningless 0777.
    if meta.file_type().is_symlink() {
        return;
    }
    let mut mode = meta.mode() & 0o7777 | mask(read_only);
    if meta.is_dir() {
        mode |= SETGID | EXEC_MASK;
    }
    if let Err(error) = fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
        tracing::warn!(path = %path.display(), %error, "chmod failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const GID: u32 = 2000;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    fn gid(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().gid()
    }

    fn require_root() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "fs_group tests chown to another group and must run as root"
        );
    }

    fn tree(root: &Path) {
        fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        fs::set_permissions(root.join("sub"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(root.join("sub/data"), "x").unwrap();
        fs::set_permissions(root.join("sub/data"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(root.join("run"), "x").unwrap();
        fs::set_permissions(root.join("run"), fs::Permissions::from_mode(0o700)).unwrap();
        symlink("sub/data", root.join("link")).unwrap();
    }

    #[test]
    fn read_write_volume_gets_group_setgid_and_group_access() {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        tree(root);
        let group = FsGroup {
            gid: GID,
            on_root_mismatch: false,
        };
        set_ownership(root, group, false).unwrap();
        for path in [
            root,
            &root.join("sub"),
            &root.join("sub/data"),
            &root.join("run"),
        ] {
            assert_eq!(gid(path), GID, "{}", path.display());
        }
        assert_eq!(gid(&root.join("link")), GID);
        assert_eq!(mode(root), 0o2775);
        assert_eq!(mode(&root.join("sub")), 0o2770);
        assert_eq!(mode(&root.join("sub/data")), 0o660);
        assert_eq!(mode(&root.join("run")), 0o760);
    }

    #[test]
    fn read_only_volume_gets_group_read() {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        tree(root);
        let group = FsGroup {
            gid: GID,
            on_root_mismatch: false,
        };
        set_ownership(root, group, true).unwrap();
        assert_eq!(mode(root), 0o2755);
        assert_eq!(mode(&root.join("sub")), 0o2750);
        assert_eq!(mode(&root.join("sub/data")), 0o640);
        assert_eq!(mode(&root.join("run")), 0o740);
    }

    #[test]
    fn on_root_mismatch_skips_a_root_already_in_order() {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        tree(root);
        std::os::unix::fs::chown(root, None, Some(GID)).unwrap();
        fs::set_permissions(root, fs::Permissions::from_mode(0o2770)).unwrap();
        let group = FsGroup {
            gid: GID,
            on_root_mismatch: true,
        };
        set_ownership(root, group, false).unwrap();
        assert_ne!(gid(&root.join("sub/data")), GID);
        assert_eq!(mode(&root.join("sub/data")), 0o600);

        // Without setgid on the root the walk runs.
        fs::set_permissions(root, fs::Permissions::from_mode(0o770)).unwrap();
        set_ownership(root, group, false).unwrap();
        assert_eq!(gid(&root.join("sub/data")), GID);
        assert_eq!(mode(&root.join("sub/data")), 0o660);
        assert_eq!(mode(root), 0o2770);
    }

    #[test]
    fn fs_group_of_pod() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [], "securityContext": {
                "fsGroup": 2000, "fsGroupChangePolicy": "OnRootMismatch"}}
        }))
        .unwrap();
        assert_eq!(
            FsGroup::of(&pod),
            Some(FsGroup {
                gid: 2000,
                on_root_mismatch: true
            })
        );
        let pod: Pod =
            serde_json::from_value(serde_json::json!({"spec": {"containers": []}})).unwrap();
        assert_eq!(FsGroup::of(&pod), None);
    }
}
