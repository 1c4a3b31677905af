//! Device nodes and the device cgroup allowlist.

use crate::SpecError;
use k8s_cri::v1::Device;
use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A cgroup rule; `major`/`minor` None is the wildcard.
pub(crate) fn rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> Result<LinuxDeviceCgroup, SpecError> {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .typ(typ)
        .access(access);
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().map_err(|e| SpecError::Build(e.to_string()))
}

/// Deny everything, then allow the devices every container may use: /dev/null, zero, full,
/// random, urandom, tty, console, ptmx and the pts devices (containerd's default devices,
/// which runc and crun add as well).
pub(crate) fn default_rules() -> Result<Vec<LinuxDeviceCgroup>, SpecError> {
    let c = LinuxDeviceType::C;
    let mut rules = vec![rule(false, LinuxDeviceType::A, None, None, "rwm")?];
    for (major, minor) in [
        (1, Some(3)),
        (1, Some(8)),
        (1, Some(7)),
        (5, Some(0)),
        (1, Some(5)),
        (1, Some(9)),
        (5, Some(1)),
        (136, None),
        (5, Some(2)),
    ] {
        rules.push(rule(true, c, Some(major), minor, "rwm")?);
    }
    Ok(rules)
}

/// The device at `path` (not following a final symlink), or None when it is no device node.
pub(crate) fn device_from_path(path: &Path) -> Result<Option<LinuxDevice>, SpecError> {
    let meta = fs::symlink_metadata(path).map_err(|source| SpecError::Device {
        path: path.to_path_buf(),
        source,
    })?;
    let ft = meta.file_type();
    let typ = if ft.is_block_device() {
        LinuxDeviceType::B
    } else if ft.is_char_device() {
        LinuxDeviceType::C
    } else {
        return Ok(None);
    };
    let rdev = meta.rdev();
    LinuxDeviceBuilder::default()
        .path(path)
        .typ(typ)
        .major(nix::sys::stat::major(rdev) as i64)
        .minor(nix::sys::stat::minor(rdev) as i64)
        .file_mode(meta.mode() & 0o7777)
        .uid(meta.uid())
        .gid(meta.gid())
        .build()
        .map(Some)
        .map_err(|e| SpecError::Build(e.to_string()))
}

/// Every device node under `dir`, recursively, skipping what containerd's getDevices skips
/// (pts, shm, fd, mqueue and a few runtimes' private dirs, /dev/console, fifos). With
/// `container_dir` set, the devices keep their relative place below it.
fn walk(
    dir: &Path,
    container_dir: Option<&Path>,
    out: &mut Vec<LinuxDevice>,
) -> Result<(), SpecError> {
    let err = |source| SpecError::Device {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(err)?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let path = e.path();
        let target = container_dir.map(|c| c.join(&name));
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            let skip = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
            if !skip.iter().any(|s| name == *s) {
                walk(&path, target.as_deref(), out)?;
            }
            continue;
        }
        if name == "console" {
            continue;
        }
        match device_from_path(&path) {
            Ok(Some(mut dev)) => {
                if let Some(t) = target {
                    dev.set_path(t);
                }
                out.push(dev);
            }
            Ok(None) => {}
            // A node that vanished while we walked is no error.
            Err(SpecError::Device { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// All of the host's devices, for privileged containers.
pub(crate) fn host_devices() -> Result<Vec<LinuxDevice>, SpecError> {
    let mut out = Vec::new();
    walk(Path::new("/dev"), None, &mut out)?;
    Ok(out)
}

/// The CRI devices (a host path may be a directory of devices) and their cgroup rules.
pub(crate) fn from_cri(
    devices: &[Device],
) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>), SpecError> {
    let mut nodes = Vec::new();
    let mut rules = Vec::new();
    for d in devices {
        let host = fs::canonicalize(&d.host_path).map_err(|source| SpecError::Device {
            path: PathBuf::from(&d.host_path),
            source,
        })?;
        let container = if d.container_path.is_empty() {
            host.clone()
        } else {
            PathBuf::from(&d.container_path)
        };
        let mut found = Vec::new();
        if host.is_dir() {
            walk(&host, Some(&container), &mut found)?;
        } else {
            let mut dev = device_from_path(&host)?.ok_or_else(|| SpecError::Device {
                path: host.clone(),
                source: std::io::Error::other("not a device node"),
            })?;
            dev.set_path(container);
            found.push(dev);
        }
        let access = if d.permissions.is_empty() {
            "rwm"
        } else {
            &d.permissions
        };
        for dev in found {
            rules.push(rule(
                true,
                dev.typ(),
                Some(dev.major()),
                Some(dev.minor()),
                access,
            )?);
            nodes.push(dev);
        }
    }
    Ok((nodes, rules))
}
