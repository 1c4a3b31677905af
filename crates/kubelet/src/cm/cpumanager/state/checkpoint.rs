//! ROOT_DIR/cpu_manager_state in upstream's format (state/checkpoint.go, the V2 checkpoint):
//! `{"policyName":..,"defaultCpuSet":..,"entries":{pod:{container:cpus}},"checksum":..}`.
//!
//! The checksum is upstream's checkpointmanager/checksum: FNV-1a (32 bit) over go-spew's `%#v`
//! rendering of the checkpoint struct with the checksum field zeroed (k8s dump.ForHash: types
//! on struct fields, none inside maps, map keys sorted, strings bare). A file the upstream
//! kubelet wrote is read, and one written here is accepted by it.

use super::CpuState;
use crate::cm::cpumanager::cpuset::CpuSet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const FILE_NAME: &str = "cpu_manager_state";

#[derive(Debug, Error)]
pub enum CheckpointError {
    /// Upstream's start failure, word for word.
    #[error(
        "could not restore state from checkpoint: {reason}, please drain this node and delete the CPU manager checkpoint file {path:?} before restarting Kubelet"
    )]
    Restore { reason: String, path: PathBuf },
    #[error("cannot write the CPU manager checkpoint {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    #[serde(rename = "policyName", default)]
    policy_name: String,
    #[serde(rename = "defaultCpuSet", default)]
    default_cpu_set: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    entries: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    checksum: u64,
}

impl Checkpoint {
    fn checksum(&self) -> u64 {
        let entries: Vec<String> = self
            .entries
            .iter()
            .map(|(pod, containers)| {
                let containers: Vec<String> = containers
                    .iter()
                    .map(|(name, cpus)| format!("{name}:{cpus}"))
                    .collect();
                format!("{pod}:map[{}]", containers.join(" "))
            })
            .collect();
        let rendered = format!(
            "(*state.CPUManagerCheckpoint){{PolicyName:(string){} DefaultCPUSet:(string){} Entries:(map[string]map[string]string)map[{}] Checksum:(checksum.Checksum)0}}",
            self.policy_name,
            self.default_cpu_set,
            entries.join(" ")
        );
        u64::from(fnv1a32(rendered.as_bytes()))
    }
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash: u32, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

/// The checkpoint's bytes for `state` under `policy`.
pub fn encode(policy: &str, state: &CpuState) -> Vec<u8> {
    let mut checkpoint = Checkpoint {
        policy_name: policy.to_string(),
        default_cpu_set: state.default.to_string(),
        entries: state
            .assignments
            .iter()
            .map(|(pod, containers)| {
                let containers = containers
                    .iter()
                    .map(|(name, cpus)| (name.clone(), cpus.to_string()))
                    .collect();
                (pod.clone(), containers)
            })
            .collect(),
        checksum: 0,
    };
    checkpoint.checksum = checkpoint.checksum();
    serde_json::to_vec(&checkpoint).expect("a checkpoint of strings serializes")
}

/// Writes the checkpoint atomically: a reader sees the old file or the new one.
pub fn store(path: &Path, policy: &str, state: &CpuState) -> Result<(), CheckpointError> {
    let write_error = |source| CheckpointError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, encode(policy, state)).map_err(write_error)?;
    std::fs::rename(&tmp, path).map_err(write_error)
}

/// `restoreState`: the state in `path`, or None when there is no file yet. A file of another
/// policy, with a wrong checksum or unparsable CPU sets is refused as upstream refuses it.
pub fn restore(path: &Path, policy: &str) -> Result<Option<CpuState>, CheckpointError> {
    let fail = |reason: String| CheckpointError::Restore {
        reason,
        path: path.to_path_buf(),
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e.to_string())),
    };
    let checkpoint: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))?;
    // A zero checksum is accepted, as upstream does for files of its old file backend.
    if checkpoint.checksum != 0 && checkpoint.checksum != checkpoint.checksum() {
        return Err(fail("checkpoint is corrupted".into()));
    }
    if checkpoint.policy_name != policy {
        return Err(fail(format!(
            "configured policy {policy:?} differs from state checkpoint policy {:?}",
            checkpoint.policy_name
        )));
    }
    let default: CpuSet = checkpoint.default_cpu_set.parse().map_err(|e| {
        fail(format!(
            "could not parse default cpu set {:?}: {e}",
            checkpoint.default_cpu_set
        ))
    })?;
    let mut state = CpuState {
        default,
        ..Default::default()
    };
    for (pod, containers) in &checkpoint.entries {
        for (container, text) in containers {
            let cpus: CpuSet = text.parse().map_err(|e| {
                fail(format!(
                    "could not parse cpuset {text:?} for container {container:?} in pod {pod:?}: {e}"
                ))
            })?;
            state.set(pod, container, cpus);
        }
    }
    Ok(Some(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by the upstream kubelet v1.28.4 (--cpu-manager-policy=static --reserved-cpus=0,
    /// one Guaranteed pod with cpu: 1) on a 2-CPU machine.
    const UPSTREAM: &str = r#"{"policyName":"static","defaultCpuSet":"0","entries":{"4fe4dd2f785266c2035a93e41aa274b3":{"app":"1"}},"checksum":511712603}"#;

    fn upstream_state() -> CpuState {
        let mut state = CpuState {
            default: CpuSet::from([0]),
            ..Default::default()
        };
        state.set("4fe4dd2f785266c2035a93e41aa274b3", "app", CpuSet::from([1]));
        state
    }

    #[test]
    fn reads_and_writes_the_upstream_file_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, UPSTREAM).unwrap();
        assert_eq!(restore(&path, "static").unwrap(), Some(upstream_state()));
        assert_eq!(
            String::from_utf8(encode("static", &upstream_state())).unwrap(),
            UPSTREAM
        );
    }

    /// Also written by the upstream kubelet v1.28.4 on a fresh root dir: the none policy, and
    /// the static policy before any pod.
    #[test]
    fn empty_states_match_upstream() {
        let none = CpuState::default();
        assert_eq!(
            String::from_utf8(encode("none", &none)).unwrap(),
            r#"{"policyName":"none","defaultCpuSet":"","checksum":1353318690}"#
        );
        let fresh = CpuState {
            default: "0-1".parse().unwrap(),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(encode("static", &fresh)).unwrap(),
            r#"{"policyName":"static","defaultCpuSet":"0-1","checksum":1636926438}"#
        );
    }

    #[test]
    fn refuses_another_policy_and_a_bad_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, UPSTREAM).unwrap();
        let err = restore(&path, "none").unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "could not restore state from checkpoint: configured policy \"none\" differs from state checkpoint policy \"static\", please drain this node and delete the CPU manager checkpoint file {:?} before restarting Kubelet",
                path
            )
        );
        std::fs::write(&path, UPSTREAM.replace("511712603", "511712604")).unwrap();
        let err = restore(&path, "static").unwrap_err().to_string();
        assert!(err.contains("checkpoint is corrupted"), "{err}");
    }

    #[test]
    fn a_missing_file_is_no_state() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            restore(&dir.path().join(FILE_NAME), "static").unwrap(),
            None
        );
    }

    #[test]
    fn store_then_restore() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        store(&path, "static", &upstream_state()).unwrap();
        assert_eq!(restore(&path, "static").unwrap(), Some(upstream_state()));
    }
}
