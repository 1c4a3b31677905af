//! Pod cgroups with the cgroupfs driver: /kubepods[/burstable|/besteffort]/pod<uid> under the
//! cgroup root, in every mounted hierarchy. The kubelet creates the pod level with its limits
//! before the sandbox, and removes it once the pod's containers are gone (runc removes only the
//! container leaves).

use crate::cm::machine::{bytes, milli_cpu};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use kubelet_kuberuntime::qos::{self, QosClass};
use std::io;
use std::path::{Path, PathBuf};

/// A mounted cgroup hierarchy: v1 with its controllers, or the v2 unified one.
#[derive(Debug, Clone)]
struct Hierarchy {
    mount: PathBuf,
    controllers: Vec<String>,
    v2: bool,
}

/// The node's cgroup hierarchies and where pods go in them.
#[derive(Debug, Clone)]
pub struct PodCgroups {
    hierarchies: Vec<Hierarchy>,
    cgroup_root: String,
    per_qos: bool,
}

fn mounted_hierarchies() -> io::Result<Vec<Hierarchy>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split_whitespace();
        let fstype = post.next().unwrap_or("");
        let _source = post.next();
        let super_opts = post.next().unwrap_or("");
        let mount = pre.split_whitespace().nth(4).unwrap_or("");
        match fstype {
            "cgroup" => out.push(Hierarchy {
                mount: mount.into(),
                controllers: super_opts.split(',').map(String::from).collect(),
                v2: false,
            }),
            "cgroup2" => out.push(Hierarchy {
                mount: mount.into(),
                controllers: Vec::new(),
                v2: true,
            }),
            _ => {}
        }
    }
    Ok(out)
}

/// The pod-level limits upstream sets: shares from the sum of CPU requests, and quota and memory
/// limit only when every container has a limit.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PodLimits {
    pub cpu_shares: u64,
    pub cpu_quota: Option<u64>,
    pub memory: Option<u64>,
}

pub fn pod_limits(pod: &Pod) -> PodLimits {
    let Some(spec) = pod.spec.as_ref() else {
        return PodLimits::default();
    };
    let (mut req_cpu, mut lim_cpu, mut lim_mem) = (0u64, Some(0u64), Some(0u64));
    for c in &spec.containers {
        let res = c.resources.as_ref();
        let get = |which: &str, r: Option<&std::collections::BTreeMap<String, Quantity>>| {
            r.and_then(|m| m.get(which)).cloned()
        };
        req_cpu += get("cpu", res.and_then(|r| r.requests.as_ref())).map_or(0, |q| milli_cpu(&q));
        lim_cpu = lim_cpu
            .zip(get("cpu", res.and_then(|r| r.limits.as_ref())).map(|q| milli_cpu(&q)))
            .map(|(a, b)| a + b);
        lim_mem = lim_mem
            .zip(get("memory", res.and_then(|r| r.limits.as_ref())).map(|q| bytes(&q)))
            .map(|(a, b)| a + b);
    }
    if qos::qos_class(pod) == QosClass::BestEffort {
        return PodLimits {
            cpu_shares: 2,
            cpu_quota: None,
            memory: None,
        };
    }
    PodLimits {
        cpu_shares: (req_cpu * 1024 / 1000).max(2),
        cpu_quota: lim_cpu
            .filter(|&m| m > 0)
            .map(|m| (m * 100_000 / 1000).max(1000)),
        memory: lim_mem.filter(|&m| m > 0),
    }
}

impl PodCgroups {
    pub fn new(cgroup_root: &str, per_qos: bool) -> io::Result<Self> {
        Ok(Self {
            hierarchies: mounted_hierarchies()?,
            cgroup_root: cgroup_root.into(),
            per_qos,
        })
    }

    /// Pod cgroups on a node whose cgroups the kubelet does not manage: nothing is created or
    /// removed. Unit tests run the kubelet this way against the fake runtime.
    pub fn unmanaged(cgroup_root: &str) -> Self {
        Self {
            hierarchies: Vec::new(),
            cgroup_root: cgroup_root.into(),
            per_qos: true,
        }
    }

    /// The pod's cgroup path, relative to each hierarchy's mount.
    pub fn pod_path(&self, pod: &Pod) -> String {
        qos::pod_cgroup_parent(pod, &self.cgroup_root, self.per_qos)
    }

    fn dir(h: &Hierarchy, path: &str) -> PathBuf {
        h.mount.join(path.trim_start_matches('/'))
    }

    /// Creates the pod cgroup with its limits in the cpu, memory and pids hierarchies, once.
    pub fn ensure(&self, pod: &Pod) -> io::Result<()> {
        let path = self.pod_path(pod);
        let limits = pod_limits(pod);
        let only_v2 = self.hierarchies.iter().all(|h| h.v2);
        for h in &self.hierarchies {
            let has = |c: &str| h.controllers.iter().any(|x| x == c);
            let dir = Self::dir(h, &path);
            // Every sync calls this; a pod's resources are fixed for its UID, so the limits
            // written when the cgroup was made are still right.
            if dir.is_dir() {
                continue;
            }
            if h.v2 && only_v2 {
                std::fs::create_dir_all(&dir)?;
                write_if_present(
                    &dir.join("cpu.weight"),
                    &(1 + ((limits.cpu_shares.saturating_sub(2)) * 9999) / 262142).to_string(),
                )?;
                if let Some(q) = limits.cpu_quota {
                    write_if_present(&dir.join("cpu.max"), &format!("{q} 100000"))?;
                }
                if let Some(m) = limits.memory {
                    write_if_present(&dir.join("memory.max"), &m.to_string())?;
                }
            } else if has("cpu") {
                std::fs::create_dir_all(&dir)?;
                write_if_present(&dir.join("cpu.shares"), &limits.cpu_shares.to_string())?;
                if let Some(q) = limits.cpu_quota {
                    write_if_present(&dir.join("cpu.cfs_quota_us"), &q.to_string())?;
                }
            } else if has("memory") {
                std::fs::create_dir_all(&dir)?;
                if let Some(m) = limits.memory {
                    write_if_present(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
                }
            } else if has("pids") {
                std::fs::create_dir_all(&dir)?;
            }
        }
        Ok(())
    }

    /// Removes the pod cgroup of `pod_uid` from every hierarchy, deepest first.
    pub fn remove(&self, pod_uid: &str) -> io::Result<()> {
        for dir in self
            .pod_dirs()
            .into_iter()
            .filter(|(uid, _)| uid == pod_uid)
            .map(|(_, d)| d)
        {
            kubelet_host::cgroupfs::remove_tree(&dir).map_err(io::Error::other)?;
        }
        Ok(())
    }

    /// Every pod cgroup dir under the kubepods tree, with the pod UID it belongs to.
    pub fn pod_dirs(&self) -> Vec<(String, PathBuf)> {
        let base = format!("{}/kubepods", self.cgroup_root.trim_end_matches('/'));
        let mut out = Vec::new();
        for h in &self.hierarchies {
            let kubepods = Self::dir(h, &base);
            for parent in [
                kubepods.clone(),
                kubepods.join("burstable"),
                kubepods.join("besteffort"),
            ] {
                let Ok(entries) = std::fs::read_dir(&parent) else {
                    continue;
                };
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    if let Some(uid) = name.strip_prefix("pod")
                        && e.path().is_dir()
                    {
                        out.push((uid.to_string(), e.path()));
                    }
                }
            }
        }
        out
    }

    /// The QoS-level cgroups, made at start as upstream does.
    pub fn ensure_qos_tree(&self) -> io::Result<()> {
        if !self.per_qos {
            return Ok(());
        }
        let base = format!("{}/kubepods", self.cgroup_root.trim_end_matches('/'));
        for h in &self.hierarchies {
            if h.v2 && !self.hierarchies.iter().all(|h| h.v2) {
                continue;
            }
            for sub in ["", "burstable", "besteffort"] {
                std::fs::create_dir_all(Self::dir(h, &base).join(sub))?;
            }
        }
        Ok(())
    }
}

fn write_if_present(file: &Path, value: &str) -> io::Result<()> {
    match std::fs::write(file, value) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(resources: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"uid": "u1", "name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": resources}]}
        }))
        .unwrap()
    }

    #[test]
    fn limits_follow_qos() {
        assert_eq!(
            pod_limits(&pod(serde_json::json!({}))),
            PodLimits {
                cpu_shares: 2,
                cpu_quota: None,
                memory: None
            }
        );
        let burstable = pod(serde_json::json!({"requests": {"cpu": "250m"}}));
        assert_eq!(
            pod_limits(&burstable),
            PodLimits {
                cpu_shares: 256,
                cpu_quota: None,
                memory: None
            }
        );
        let guaranteed = pod(
            serde_json::json!({"requests": {"cpu": "1", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}}),
        );
        assert_eq!(
            pod_limits(&guaranteed),
            PodLimits {
                cpu_shares: 1024,
                cpu_quota: Some(100_000),
                memory: Some(64 << 20)
            }
        );
    }
}
