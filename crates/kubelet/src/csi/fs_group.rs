//! How a pod's fsGroup reaches a CSI volume, as upstream's csi_mounter decides it: a driver with
//! the VOLUME_MOUNT_GROUP node capability mounts with the group itself (DelegateFSGroupToCSIDriver,
//! whatever the CSIDriver's fsGroupPolicy says); otherwise the kubelet changes the published
//! volume's ownership when the policy allows (supportsFSGroup).

use kubelet_volumes::FsGroup;

/// CSIDriver spec.fsGroupPolicy values; anything else (and no CSIDriver) is the default,
/// ReadWriteOnceWithFSType.
const POLICY_NONE: &str = "None";
const POLICY_FILE: &str = "File";

/// The volume as the fsGroup decision sees it.
#[derive(Debug, Clone, Copy)]
pub(super) enum AccessModes<'a> {
    /// A PV's spec.accessModes.
    Persistent(&'a [String]),
    /// An inline volume, always mounted ReadWriteOnce.
    Inline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ownership {
    Untouched,
    /// The driver is handed the group as volume_mount_group in NodeStage and NodePublish.
    Delegated(u32),
    /// The kubelet gives the published volume to the group.
    Changed(FsGroup),
}

impl Ownership {
    /// NodeStage's and NodePublish's volume_mount_group.
    pub(super) fn mount_group(self) -> String {
        match self {
            Ownership::Delegated(gid) => gid.to_string(),
            _ => String::new(),
        }
    }
}

pub(super) fn ownership(
    group: Option<FsGroup>,
    policy: Option<&str>,
    driver_mounts_group: bool,
    fs_type: &str,
    modes: AccessModes<'_>,
    read_only: bool,
) -> Ownership {
    let Some(group) = group else {
        return Ownership::Untouched;
    };
    if driver_mounts_group {
        return Ownership::Delegated(group.gid);
    }
    let allowed = match policy {
        _ if read_only => false,
        Some(POLICY_NONE) => false,
        Some(POLICY_FILE) => true,
        // ReadWriteOnceWithFSType: a filesystem the kubelet formats, which one node writes.
        _ if fs_type.is_empty() => false,
        _ => match modes {
            AccessModes::Persistent(modes) => modes.iter().any(|m| m == "ReadWriteOnce"),
            AccessModes::Inline => true,
        },
    };
    if allowed {
        Ownership::Changed(group)
    } else {
        Ownership::Untouched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: FsGroup = FsGroup {
        gid: 2000,
        on_root_mismatch: false,
    };

    fn modes(m: &[&str]) -> Vec<String> {
        m.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_default_policy_needs_an_fs_type_and_read_write_once() {
        let rwo = modes(&["ReadWriteOnce"]);
        let changed = Ownership::Changed(GROUP);
        let untouched = Ownership::Untouched;
        let cases: [(Option<&str>, &str, AccessModes<'_>, bool, Ownership); 12] = [
            (None, "ext4", AccessModes::Persistent(&rwo), false, changed),
            (
                Some("ReadWriteOnceWithFSType"),
                "ext4",
                AccessModes::Persistent(&rwo),
                false,
                changed,
            ),
            (None, "", AccessModes::Persistent(&rwo), false, untouched),
            (None, "ext4", AccessModes::Persistent(&[]), false, untouched),
            (
                None,
                "ext4",
                AccessModes::Persistent(&modes(&["ReadWriteMany"])),
                false,
                untouched,
            ),
            // As upstream's hasReadWriteOnce: RWO among others is enough.
            (
                None,
                "ext4",
                AccessModes::Persistent(&modes(&["ReadOnlyMany", "ReadWriteOnce"])),
                false,
                changed,
            ),
            (
                None,
                "ext4",
                AccessModes::Persistent(&modes(&["ReadWriteOncePod"])),
                false,
                untouched,
            ),
            (None, "ext4", AccessModes::Inline, false, changed),
            (None, "", AccessModes::Inline, false, untouched),
            (None, "ext4", AccessModes::Persistent(&rwo), true, untouched),
            (
                Some("File"),
                "",
                AccessModes::Persistent(&[]),
                false,
                changed,
            ),
            (
                Some("None"),
                "ext4",
                AccessModes::Persistent(&rwo),
                false,
                untouched,
            ),
        ];
        for (policy, fs_type, access, read_only, want) in cases {
            assert_eq!(
                ownership(Some(GROUP), policy, false, fs_type, access, read_only),
                want,
                "{policy:?} {fs_type:?} {access:?} read-only {read_only}"
            );
        }
    }

    #[test]
    fn file_policy_changes_anything_writable() {
        let rwx = modes(&["ReadWriteMany"]);
        let access = AccessModes::Persistent(&rwx);
        assert_eq!(
            ownership(Some(GROUP), Some("File"), false, "", access, false),
            Ownership::Changed(GROUP)
        );
        assert_eq!(
            ownership(Some(GROUP), Some("File"), false, "", access, true),
            Ownership::Untouched
        );
    }

    #[test]
    fn a_driver_mounting_with_the_group_gets_it_whatever_the_policy() {
        let rwo = modes(&["ReadWriteOnce"]);
        for policy in [None, Some("File"), Some("None")] {
            let got = ownership(
                Some(GROUP),
                policy,
                true,
                "",
                AccessModes::Persistent(&rwo),
                true,
            );
            assert_eq!(got, Ownership::Delegated(2000), "{policy:?}");
            assert_eq!(got.mount_group(), "2000");
        }
        assert_eq!(Ownership::Changed(GROUP).mount_group(), "");
    }

    #[test]
    fn no_fs_group_touches_nothing() {
        assert_eq!(
            ownership(None, Some("File"), true, "ext4", AccessModes::Inline, false),
            Ownership::Untouched
        );
    }
}
