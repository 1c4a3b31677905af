//! A cgroup's name and its form under each cgroup driver (upstream cm.CgroupName with
//! ToCgroupfs, ToSystemd and ParseSystemdToCgroupName). The kubelet names a cgroup by its
//! cgroupfs path, "/kubepods/burstable/pod<uid>"; under the systemd driver that cgroup is the
//! slice `kubepods-burstable-pod<uid>.slice` (each `-` inside a component turned into `_`,
//! since systemd reads `-` as a step down), found at
//! /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice.

/// The cgroup driver (--cgroup-driver), as far as names go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CgroupDriver {
    #[default]
    Cgroupfs,
    Systemd,
}

const SLICE_SUFFIX: &str = ".slice";

fn components(name: &str) -> impl Iterator<Item = &str> {
    name.split('/').filter(|p| !p.is_empty())
}

fn escaped(name: &str) -> Vec<String> {
    components(name).map(|p| p.replace('-', "_")).collect()
}

/// The slice unit of cgroup `name`; the root is systemd's root slice `-.slice`.
pub fn systemd_unit(name: &str) -> String {
    let parts = escaped(name);
    if parts.is_empty() {
        return format!("-{SLICE_SUFFIX}");
    }
    format!("{}{SLICE_SUFFIX}", parts.join("-"))
}

/// Upstream ToSystemd: the slice's path below the hierarchy root, each parent slice a
/// directory of its own; "/" for the root.
pub fn systemd_path(name: &str) -> String {
    let parts = escaped(name);
    if parts.is_empty() {
        return "/".into();
    }
    (1..=parts.len())
        .map(|n| format!("/{}{SLICE_SUFFIX}", parts[..n].join("-")))
        .collect()
}

/// Upstream ParseSystemdToCgroupName: the cgroup name of a slice, from its unit name or path
/// ("a/kubepods-besteffort-pod1_2.slice" is "/kubepods/besteffort/pod1-2").
pub fn parse_systemd(slice: &str) -> String {
    let unit = slice.rsplit('/').next().unwrap_or_default();
    let unit = unit.strip_suffix(SLICE_SUFFIX).unwrap_or(unit);
    if unit == "-" || unit.is_empty() {
        return "/".into();
    }
    unit.split('-')
        .map(|p| format!("/{}", p.replace('_', "-")))
        .collect()
}

impl CgroupDriver {
    /// Upstream cgroupManager.Name: the cgroup's path below the hierarchy root.
    pub fn path(self, name: &str) -> String {
        match self {
            CgroupDriver::Cgroupfs => {
                format!("/{}", components(name).collect::<Vec<_>>().join("/"))
            }
            CgroupDriver::Systemd => systemd_path(name),
        }
    }

    /// The cgroup parent a pod sandbox is given: the cgroupfs path, or the pod's slice unit,
    /// which containerd, CRI-O and the built-in runtime all take as `SLICE:PREFIX:ID`'s slice.
    pub fn cgroup_parent(self, name: &str) -> String {
        match self {
            CgroupDriver::Cgroupfs => self.path(name),
            CgroupDriver::Systemd => systemd_unit(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "/kubepods/burstable/pod1234-abcd-5678";

    #[test]
    fn systemd_names_match_upstream() {
        assert_eq!(
            systemd_unit(POD),
            "kubepods-burstable-pod1234_abcd_5678.slice"
        );
        assert_eq!(
            systemd_path(POD),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234_abcd_5678.slice"
        );
        assert_eq!(systemd_path("/kubepods"), "/kubepods.slice");
        assert_eq!(systemd_unit("/kubepods/"), "kubepods.slice");
        assert_eq!(systemd_path("/"), "/");
        assert_eq!(systemd_path(""), "/");
        assert_eq!(systemd_unit("/"), "-.slice");
        assert_eq!(
            systemd_path("/custom-root/kubepods"),
            "/custom_root.slice/custom_root-kubepods.slice"
        );
    }

    #[test]
    fn parsing_reverses_the_mapping() {
        assert_eq!(
            parse_systemd("kubepods-burstable-pod1234_abcd_5678.slice"),
            POD
        );
        assert_eq!(parse_systemd(&systemd_path(POD)), POD);
        assert_eq!(parse_systemd("/system.slice"), "/system");
        assert_eq!(parse_systemd("-.slice"), "/");
    }

    #[test]
    fn driver_forms() {
        assert_eq!(
            CgroupDriver::Cgroupfs.path("kubepods//besteffort/"),
            "/kubepods/besteffort"
        );
        assert_eq!(CgroupDriver::Cgroupfs.cgroup_parent(POD), POD);
        assert_eq!(
            CgroupDriver::Systemd.cgroup_parent(POD),
            "kubepods-burstable-pod1234_abcd_5678.slice"
        );
        assert_eq!(CgroupDriver::Systemd.path(POD), systemd_path(POD));
    }
}
