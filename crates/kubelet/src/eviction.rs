//! The node's pressure conditions: eviction signals measured on the machine and compared with
//! the hard eviction thresholds (upstream pkg/kubelet/eviction: memory.available,
//! nodefs.available, nodefs.inodesFree, imagefs.*, pid.available), plus the runtime's own
//! readiness, published for the node status loop. Pods are not evicted here.

use kubelet_cri::Runtime;
use kubelet_nodestatus::PressureInputs;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// One measured signal: what is left and out of how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    pub available: u64,
    pub capacity: u64,
}

/// The signals at one moment; a signal that could not be read is absent and never pressures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observations {
    pub signals: BTreeMap<&'static str, Signal>,
}

/// A hard threshold: `available < amount` means pressure.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Amount {
    Bytes(u64),
    Share(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds(Vec<(String, Amount)>);

impl Thresholds {
    /// From evictionHard (`memory.available` -> `100Mi` or `10%`), already validated by the
    /// configuration; an amount that still does not parse is skipped with a warning.
    pub fn new(hard: &BTreeMap<String, String>) -> Self {
        let parsed = hard.iter().filter_map(|(signal, text)| {
            let amount = match text.strip_suffix('%') {
                Some(percent) => percent
                    .parse::<f64>()
                    .ok()
                    .map(|p| Amount::Share(p / 100.0)),
                None => kubelet_quantity::value(text)
                    .ok()
                    .and_then(|v| u64::try_from(v).ok())
                    .map(Amount::Bytes),
            };
            if amount.is_none() {
                tracing::warn!(
                    signal,
                    amount = text,
                    "ignoring an unreadable eviction threshold"
                );
            }
            Some((signal.clone(), amount?))
        });
        Thresholds(parsed.collect())
    }

    /// The signals whose hard threshold is crossed.
    fn crossed<'a>(&'a self, seen: &'a Observations) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter_map(|(name, amount)| {
            let signal = seen.signals.get(name.as_str())?;
            let min = match *amount {
                Amount::Bytes(bytes) => bytes,
                Amount::Share(share) => (signal.capacity as f64 * share) as u64,
            };
            (signal.available < min).then_some(name.as_str())
        })
    }

    pub fn pressure(&self, seen: &Observations) -> PressureInputs {
        let mut inputs = PressureInputs::default();
        for signal in self.crossed(seen) {
            match signal {
                "memory.available" | "allocatableMemory.available" => inputs.memory_pressure = true,
                "pid.available" => inputs.pid_pressure = true,
                _ => inputs.disk_pressure = true,
            }
        }
        inputs
    }
}

/// Reads the signals from the kernel: /proc/meminfo, statvfs of the kubelet's root dir and
/// of the runtime's image filesystem, the pid limit and the process count.
pub fn observe(proc_root: &Path, root_dir: &Path, image_fs: Option<&Path>) -> Observations {
    let mut signals = BTreeMap::new();
    if let Some(memory) = memory(proc_root) {
        signals.insert("memory.available", memory);
    }
    if let Some((bytes, inodes)) = filesystem(root_dir) {
        signals.insert("nodefs.available", bytes);
        signals.insert("nodefs.inodesFree", inodes);
    }
    if let Some((bytes, inodes)) = filesystem(image_fs.unwrap_or(root_dir)) {
        signals.insert("imagefs.available", bytes);
        signals.insert("imagefs.inodesFree", inodes);
        signals.insert("containerfs.available", bytes);
        signals.insert("containerfs.inodesFree", inodes);
    }
    if let Some(pids) = pids(proc_root) {
        signals.insert("pid.available", pids);
    }
    Observations { signals }
}

fn memory(proc_root: &Path) -> Option<Signal> {
    let text = std::fs::read_to_string(proc_root.join("meminfo")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some(Signal {
        available: field("MemAvailable:")?,
        capacity: field("MemTotal:")?,
    })
}

pub(crate) fn filesystem(path: &Path) -> Option<(Signal, Signal)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let block = st.fragment_size() as u64;
    Some((
        Signal {
            available: st.blocks_available() as u64 * block,
            capacity: st.blocks() as u64 * block,
        },
        Signal {
            available: st.files_available() as u64,
            capacity: st.files() as u64,
        },
    ))
}

fn pids(proc_root: &Path) -> Option<Signal> {
    let max: u64 = std::fs::read_to_string(proc_root.join("sys/kernel/pid_max"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let running = std::fs::read_dir(proc_root)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .count() as u64;
    Some(Signal {
        available: max.saturating_sub(running),
        capacity: max,
    })
}

/// Why the runtime makes the node not ready, in upstream's words; empty when it is ready.
async fn runtime_not_ready(runtime: &dyn Runtime) -> Vec<String> {
    let status = match runtime.status().await {
        Ok(status) => status,
        Err(e) => return vec![format!("container runtime is down: {e}")],
    };
    let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
    let mut reasons = Vec::new();
    for wanted in ["RuntimeReady", "NetworkReady"] {
        match conditions.iter().find(|c| c.r#type == wanted) {
            Some(c) if c.status => {}
            Some(c) => {
                let what = if wanted == "NetworkReady" {
                    "container runtime network not ready"
                } else {
                    "container runtime not ready"
                };
                reasons.push(format!(
                    "{what}: {wanted}=false reason:{} message:{}",
                    c.reason, c.message
                ));
            }
            None => reasons.push(format!(
                "container runtime status check may not have completed yet: {wanted} missing"
            )),
        }
    }
    reasons
}

/// Measures every `period` and publishes the node's pressure and readiness.
pub struct PressureMonitor {
    pub runtime: Arc<dyn Runtime>,
    pub thresholds: Thresholds,
    pub root_dir: PathBuf,
    pub period: Duration,
}

impl PressureMonitor {
    pub async fn run(self, out: watch::Sender<PressureInputs>) {
        loop {
            let image_fs = image_fs_mountpoint(self.runtime.as_ref()).await;
            let seen = observe(Path::new("/proc"), &self.root_dir, image_fs.as_deref());
            let mut inputs = self.thresholds.pressure(&seen);
            inputs.not_ready_reasons = runtime_not_ready(self.runtime.as_ref()).await;
            out.send_if_modified(|old| {
                let changed = *old != inputs;
                *old = inputs;
                changed
            });
            tokio::time::sleep(self.period).await;
        }
    }
}

pub(crate) async fn image_fs_mountpoint(runtime: &dyn Runtime) -> Option<PathBuf> {
    let usage = runtime.image_fs_info().await.ok()?;
    let mountpoint = &usage.first()?.fs_id.as_ref()?.mountpoint;
    Some(PathBuf::from(mountpoint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(pairs: &[(&'static str, u64, u64)]) -> Observations {
        Observations {
            signals: pairs
                .iter()
                .map(|&(n, available, capacity)| {
                    (
                        n,
                        Signal {
                            available,
                            capacity,
                        },
                    )
                })
                .collect(),
        }
    }

    fn hard(pairs: &[(&str, &str)]) -> Thresholds {
        Thresholds::new(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn thresholds_in_bytes_and_percent() {
        let t = hard(&[("memory.available", "100Mi"), ("nodefs.available", "10%")]);
        let calm = seen(&[
            ("memory.available", 200 << 20, 1 << 30),
            ("nodefs.available", 20, 100),
        ]);
        assert_eq!(t.pressure(&calm), PressureInputs::default());
        let tight = seen(&[
            ("memory.available", 50 << 20, 1 << 30),
            ("nodefs.available", 9, 100),
        ]);
        let p = t.pressure(&tight);
        assert!(p.memory_pressure && p.disk_pressure && !p.pid_pressure);
    }

    #[test]
    fn each_signal_maps_to_its_condition() {
        let t = hard(&[("imagefs.inodesFree", "5%"), ("pid.available", "1000")]);
        let p = t.pressure(&seen(&[
            ("imagefs.inodesFree", 1, 100),
            ("pid.available", 10, 4_000_000),
        ]));
        assert!(p.disk_pressure && p.pid_pressure && !p.memory_pressure);
        // An unmeasured signal never pressures.
        assert_eq!(t.pressure(&seen(&[])), PressureInputs::default());
    }

    #[test]
    fn reads_this_machine() {
        let seen = observe(Path::new("/proc"), Path::new("/"), None);
        for name in [
            "memory.available",
            "nodefs.available",
            "nodefs.inodesFree",
            "pid.available",
        ] {
            let s = seen
                .signals
                .get(name)
                .unwrap_or_else(|| panic!("{name} not measured"));
            assert!(s.available <= s.capacity && s.capacity > 0, "{name}: {s:?}");
        }
    }
}
