//! The systemd cgroup driver (upstream cgroupManagerImpl with useSystemd, over runc's systemd
//! managers): each cgroup the kubelet names is a slice systemd owns, "/kubepods/burstable"
//! being kubepods-burstable.slice. Slices are made with StartTransientUnit, limited with
//! SetUnitProperties and removed with StopUnit, each waiting for systemd's job; as runc does,
//! the limits then also go straight to the cgroup files (systemd rounds the CPU quota and has
//! no property for some files), and what lies in the files (existence, children, processes) is
//! read there.

mod bus;
pub mod properties;

use crate::cm::cgroup_manager::{CgroupError, CgroupManager, Cgroupfs};
use crate::cm::resource_config::ResourceConfig;
use bus::Bus;
use kubelet_kuberuntime::qos::cgroup_name::{parse_systemd, systemd_path, systemd_unit};
use std::io;
use thiserror::Error;

/// Why systemd did not do what the driver asked; each names the unit.
#[derive(Debug, Error)]
pub enum SystemdError {
    #[error("cannot run the systemd D-Bus client thread: {0}")]
    Thread(#[source] io::Error),
    #[error("the systemd D-Bus client thread is gone")]
    Gone,
    #[error("cannot reach systemd on the system bus: {source}")]
    Connect { source: Box<zbus::Error> },
    #[error("systemd refused {method} for {unit}: {source}")]
    Call {
        unit: String,
        method: &'static str,
        source: Box<zbus::Error>,
    },
    #[error(
        "systemd's job for {method} of {unit} ended with result {result:?} (see journalctl -u {unit})"
    )]
    Job {
        unit: String,
        method: &'static str,
        result: String,
    },
    #[error("systemd did not finish {method} of {unit} within {} s", bus::JOB_TIMEOUT.as_secs())]
    Timeout { unit: String, method: &'static str },
    #[error("the system bus closed while systemd worked on {unit}")]
    Closed { unit: String },
}

#[derive(Debug)]
pub struct Systemd {
    files: Cgroupfs,
    bus: Bus,
}

/// The kubelet's name of a cgroup given either way: "/system.slice" (a --system-reserved-cgroup
/// under this driver) is "/system", as upstream's cgroupManager.CgroupName reads it.
fn cgroup_name(name: &str) -> String {
    match name.rsplit('/').find(|p| !p.is_empty()) {
        Some(last) if last.ends_with(".slice") => parse_systemd(last),
        _ => name.to_string(),
    }
}

/// The slice that holds cgroup `name`.
fn parent_unit(name: &str) -> String {
    let name = cgroup_name(name);
    let parent = name
        .trim_end_matches('/')
        .rsplit_once('/')
        .map_or("", |(p, _)| p);
    systemd_unit(parent)
}

impl Systemd {
    /// Connects to systemd; the files are those of the host's hierarchies.
    pub fn new() -> Result<Self, CgroupError> {
        Ok(Self {
            files: Cgroupfs::new()?,
            bus: Bus::start()?,
        })
    }

    fn path(name: &str) -> String {
        systemd_path(&cgroup_name(name))
    }

    fn unit(name: &str) -> String {
        systemd_unit(&cgroup_name(name))
    }

    /// Upstream's Set: the unit's properties, then the files.
    fn apply(&self, name: &str, config: &ResourceConfig) -> Result<(), CgroupError> {
        let unit = Self::unit(name);
        let limits = properties::limits(config, self.files.unified(), self.bus.version);
        if !limits.is_empty() {
            self.bus.set_properties(&unit, limits)?;
        }
        self.files.write(&Self::path(name), config)
    }
}

impl CgroupManager for Systemd {
    fn exists(&self, name: &str) -> bool {
        self.files.exists(&Self::path(name))
    }

    fn create(&self, name: &str, config: &ResourceConfig) -> Result<(), CgroupError> {
        let unit = Self::unit(name);
        let unified = self.files.unified();
        let mut start = properties::creation(&unit, &parent_unit(name), unified);
        start.extend(properties::limits(config, unified, self.bus.version));
        tracing::debug!(cgroup = name, unit = %unit, "starting the slice");
        self.bus.start_unit(&unit, start)?;
        // A slice left from an earlier run keeps its old limits through the start.
        self.apply(name, config)
    }

    fn update(&self, name: &str, config: &ResourceConfig) -> Result<(), CgroupError> {
        if !self.exists(name) {
            return Err(CgroupError::Missing(name.to_string()));
        }
        self.apply(name, config)
    }

    fn destroy(&self, name: &str) -> Result<(), CgroupError> {
        let path = Self::path(name);
        // As upstream's pod container manager: what is left is killed first.
        self.files.kill(&path)?;
        self.bus.stop_unit(&Self::unit(name))?;
        // systemd before 240 leaves sub-cgroups it did not make.
        self.files.remove(&path)
    }

    fn children(&self, name: &str) -> Vec<String> {
        self.files
            .children(&Self::path(name))
            .into_iter()
            .filter(|child| child.ends_with(".slice"))
            .filter_map(|child| parse_systemd(&child).rsplit('/').next().map(str::to_string))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_given_as_slices_are_read_back() {
        assert_eq!(cgroup_name("/system.slice"), "/system");
        assert_eq!(cgroup_name("/kubepods/burstable"), "/kubepods/burstable");
        assert_eq!(Systemd::unit("/system.slice"), "system.slice");
        assert_eq!(
            Systemd::path("/kubepods/besteffort/pod1-2"),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1_2.slice"
        );
    }

    #[test]
    fn parents() {
        assert_eq!(parent_unit("/kubepods"), "-.slice");
        assert_eq!(parent_unit("/kubepods/burstable"), "kubepods.slice");
        assert_eq!(
            parent_unit("/kubepods/burstable/pod1-2"),
            "kubepods-burstable.slice"
        );
        assert_eq!(parent_unit("/system.slice"), "-.slice");
    }

    #[test]
    fn errors_name_the_unit_and_the_cause() {
        let err = SystemdError::Job {
            unit: "kubepods-burstable-pod1_2.slice".into(),
            method: "StartTransientUnit",
            result: "failed".into(),
        };
        assert_eq!(
            err.to_string(),
            "systemd's job for StartTransientUnit of kubepods-burstable-pod1_2.slice ended with \
             result \"failed\" (see journalctl -u kubepods-burstable-pod1_2.slice)"
        );
    }
}
