//! The cgroup driver seam (upstream cm.CgroupManager): cgroups are named by their absolute path
//! in the cgroup namespace ("/kubepods/burstable"), and a driver turns a name and a
//! [`ResourceConfig`] into directories and interface files. [`Cgroupfs`] writes the cgroup
//! filesystems directly, on v1 and on the v2 unified hierarchy; [`crate::cm::systemd::Systemd`]
//! asks systemd for slices and uses [`Cgroupfs`] for what lies in the files.

use crate::cm::resource_config::ResourceConfig;
use kubelet_host::cgroupfs::{self, Hierarchy};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fmt::Debug;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot read the cgroup mounts: {0}")]
    Mounts(#[source] kubelet_host::HostError),
    #[error("cannot create cgroup {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("cgroup {0:?} does not exist")]
    Missing(String),
    #[error("cannot kill the processes of cgroup {path}: {source}")]
    Kill {
        path: PathBuf,
        #[source]
        source: kubelet_host::HostError,
    },
    #[error("processes {pids:?} are still in cgroup {path} after SIGKILL")]
    Lingering { path: PathBuf, pids: Vec<i32> },
    #[error(transparent)]
    Remove(kubelet_host::HostError),
    #[error(transparent)]
    Systemd(#[from] crate::cm::systemd::SystemdError),
}

/// What the kubelet does with cgroups, whatever the driver.
pub trait CgroupManager: Send + Sync + Debug {
    /// Whether the cgroup exists in every hierarchy the kubelet configures.
    fn exists(&self, name: &str) -> bool;
    /// Creates the cgroup (and its parents) where it is missing, then applies `config`.
    fn create(&self, name: &str, config: &ResourceConfig) -> Result<(), CgroupError>;
    /// Applies `config` to an existing cgroup.
    fn update(&self, name: &str, config: &ResourceConfig) -> Result<(), CgroupError>;
    /// Kills every process left in the cgroup tree, then removes it from every hierarchy.
    fn destroy(&self, name: &str) -> Result<(), CgroupError>;
    /// The names of the cgroup's direct children, in any hierarchy.
    fn children(&self, name: &str) -> Vec<String>;
}

/// The cgroupfs driver. On a hybrid host (v1 controllers plus an empty unified mount) the
/// limits go to the v1 hierarchies; only a pure v2 host uses the unified one.
#[derive(Debug, Clone)]
pub struct Cgroupfs {
    hierarchies: Vec<Hierarchy>,
}

/// The controllers the kubelet sets limits with.
const CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];
/// SIGKILL rounds before a cgroup that keeps processes is reported (upstream tries 5 times).
const KILL_ATTEMPTS: usize = 5;

impl Cgroupfs {
    /// The host's hierarchies; the unified one's controllers are read from its root once, for
    /// delegation.
    pub fn new() -> Result<Self, CgroupError> {
        let mut hierarchies = cgroupfs::hierarchies().map_err(CgroupError::Mounts)?;
        for h in hierarchies.iter_mut().filter(|h| h.v2) {
            let offered = std::fs::read_to_string(h.mount.join("cgroup.controllers"));
            h.controllers = offered
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect();
        }
        Ok(Self::with_hierarchies(hierarchies))
    }

    pub fn with_hierarchies(hierarchies: Vec<Hierarchy>) -> Self {
        Self { hierarchies }
    }

    pub(crate) fn unified(&self) -> bool {
        !self.hierarchies.is_empty() && self.hierarchies.iter().all(|h| h.v2)
    }

    /// The hierarchies limits are written to.
    fn managed(&self) -> impl Iterator<Item = &Hierarchy> {
        let unified = self.unified();
        self.hierarchies.iter().filter(move |h| {
            if unified {
                h.v2
            } else {
                !h.v2 && CONTROLLERS.iter().any(|c| h.has(c))
            }
        })
    }

    fn dir(h: &Hierarchy, name: &str) -> PathBuf {
        h.mount.join(name.trim_start_matches('/'))
    }

    /// Writes `config`'s interface files of cgroup `name`, which must exist.
    pub(crate) fn write(&self, name: &str, config: &ResourceConfig) -> Result<(), CgroupError> {
        let unified = self.unified();
        for h in self.managed() {
            let files = if unified {
                config.v2_files()
            } else {
                config.v1_files()
            };
            for f in files.into_iter().filter(|f| unified || h.has(f.controller)) {
                let path = Self::dir(h, name).join(f.name);
                match std::fs::write(&path, &f.value) {
                    // A controller the kernel lacks (no pids on an old kernel) limits nothing.
                    Err(e)
                        if e.kind() == io::ErrorKind::NotFound
                            && path.parent().is_some_and(|d| d.is_dir()) => {}
                    Err(source) => {
                        return Err(CgroupError::Write {
                            path,
                            value: f.value,
                            source,
                        });
                    }
                    Ok(()) => {}
                }
            }
        }
        Ok(())
    }

    /// v2 controllers are usable in a cgroup only once its parent delegates them. As runc's
    /// cgroup manager, which upstream uses, every controller the root offers is delegated down
    /// the path (io and cpuset too, for the runtime's containers and their stats).
    fn delegate_v2(h: &Hierarchy, name: &str) {
        let offered: Vec<&str> = if h.controllers.is_empty() {
            CONTROLLERS.to_vec()
        } else {
            h.controllers.iter().map(String::as_str).collect()
        };
        let mut dir = h.mount.clone();
        for part in name.split('/').filter(|p| !p.is_empty()) {
            // Only what the level does not delegate yet (after the first pod, nothing), one at
            // a time, best effort: the kernel refuses a whole write for one controller it
            // cannot enable, and one left off makes writing its limit fail clearly.
            let file = dir.join("cgroup.subtree_control");
            let enabled = std::fs::read_to_string(&file).unwrap_or_default();
            for controller in offered
                .iter()
                .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
            {
                let _ = std::fs::write(&file, format!("+{controller}"));
            }
            dir.push(part);
            // The next level must exist for its own subtree_control; create() reports errors.
            let _ = std::fs::create_dir(&dir);
        }
    }

    /// SIGKILL to every process of the tree until none is left.
    fn kill_all(dir: &std::path::Path) -> Result<(), CgroupError> {
        let pids_of = || {
            cgroupfs::tree_pids(dir).map_err(|source| CgroupError::Kill {
                path: dir.to_path_buf(),
                source,
            })
        };
        let mut pids = pids_of()?;
        for _ in 0..KILL_ATTEMPTS {
            if pids.is_empty() {
                return Ok(());
            }
            for &pid in &pids {
                // A process that is already gone is what we want.
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(100));
            pids = pids_of()?;
        }
        if pids.is_empty() {
            Ok(())
        } else {
            Err(CgroupError::Lingering {
                path: dir.to_path_buf(),
                pids,
            })
        }
    }

    /// SIGKILL to every process left in the cgroup tree, in every hierarchy.
    pub(crate) fn kill(&self, name: &str) -> Result<(), CgroupError> {
        for h in &self.hierarchies {
            Self::kill_all(&Self::dir(h, name))?;
        }
        Ok(())
    }

    /// Removes the (empty) cgroup tree from every hierarchy; a missing one is removed already.
    pub(crate) fn remove(&self, name: &str) -> Result<(), CgroupError> {
        for h in &self.hierarchies {
            cgroupfs::remove_tree(&Self::dir(h, name)).map_err(CgroupError::Remove)?;
        }
        Ok(())
    }
}

impl CgroupManager for Cgroupfs {
    fn exists(&self, name: &str) -> bool {
        self.managed().all(|h| Self::dir(h, name).is_dir())
    }

    fn create(&self, name: &str, config: &ResourceConfig) -> Result<(), CgroupError> {
        for h in self.managed() {
            if h.v2 {
                Self::delegate_v2(h, name);
            }
            let dir = Self::dir(h, name);
            std::fs::create_dir_all(&dir).map_err(|source| CgroupError::Create {
                path: dir.clone(),
                source,
            })?;
        }
        self.write(name, config)
    }

    fn update(&self, name: &str, config: &ResourceConfig) -> Result<(), CgroupError> {
        if !self.exists(name) {
            return Err(CgroupError::Missing(name.to_string()));
        }
        self.write(name, config)
    }

    fn destroy(&self, name: &str) -> Result<(), CgroupError> {
        self.kill(name)?;
        self.remove(name)
    }

    fn children(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for h in &self.hierarchies {
            let Ok(entries) = std::fs::read_dir(Self::dir(h, name)) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1(root: &std::path::Path, controllers: &[&str]) -> Hierarchy {
        let mount = root.join(controllers.join(","));
        std::fs::create_dir_all(&mount).unwrap();
        Hierarchy {
            mount,
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            v2: false,
        }
    }

    #[test]
    fn v2_delegates_every_controller_the_root_offers_once() {
        // A plain directory keeps only the last write; the guest reads the real files back.
        let root = tempfile::tempdir().unwrap();
        let fs = Cgroupfs::with_hierarchies(vec![Hierarchy {
            mount: root.path().to_path_buf(),
            controllers: vec!["cpu".into(), "io".into()],
            v2: true,
        }]);
        // The root delegates both already: it is left alone.
        std::fs::write(root.path().join("cgroup.subtree_control"), "cpu io\n").unwrap();
        fs.create("/kubepods/burstable", &ResourceConfig::default())
            .unwrap();
        let read = |dir: &str| {
            std::fs::read_to_string(root.path().join(dir).join("cgroup.subtree_control")).unwrap()
        };
        assert_eq!(read(""), "cpu io\n");
        assert_eq!(read("kubepods"), "+io");
        assert!(root.path().join("kubepods/burstable").is_dir());
        assert!(
            !root
                .path()
                .join("kubepods/burstable/cgroup.subtree_control")
                .exists()
        );
    }

    #[test]
    fn v1_limits_go_to_their_controllers_hierarchy() {
        let root = tempfile::tempdir().unwrap();
        let cpu = v1(root.path(), &["cpu", "cpuacct"]);
        let memory = v1(root.path(), &["memory"]);
        let freezer = v1(root.path(), &["freezer"]);
        let fs = Cgroupfs::with_hierarchies(vec![cpu.clone(), memory.clone(), freezer.clone()]);
        let config = ResourceConfig {
            cpu_shares: Some(2),
            memory: Some(1 << 20),
            ..Default::default()
        };
        // A plain directory has no interface files: creating one makes them, as the kernel would.
        for (h, file) in [(&cpu, "cpu.shares"), (&memory, "memory.limit_in_bytes")] {
            std::fs::create_dir_all(h.mount.join("kp")).unwrap();
            std::fs::write(h.mount.join("kp").join(file), "").unwrap();
        }
        fs.create("/kp", &config).unwrap();
        assert_eq!(
            std::fs::read_to_string(cpu.mount.join("kp/cpu.shares")).unwrap(),
            "2"
        );
        assert_eq!(
            std::fs::read_to_string(memory.mount.join("kp/memory.limit_in_bytes")).unwrap(),
            "1048576"
        );
        assert!(!cpu.mount.join("kp/memory.limit_in_bytes").exists());
        assert!(
            !freezer.mount.join("kp").exists(),
            "only limited hierarchies get the cgroup"
        );
        assert!(fs.exists("/kp"));
        assert_eq!(fs.children("/"), vec!["kp".to_string()]);
        assert!(matches!(
            fs.update("/other", &config),
            Err(CgroupError::Missing(_))
        ));
    }
}
