//! What DEL needs, kept per sandbox: the network list ADD used (so a changed conf dir does not
//! change teardown), the args, and the result once ADD finished (libcni's results cache).

use super::config::NetworkList;
use crate::NetworkError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io;
use std::path::{Path, PathBuf};

const KIND: &str = "kubelet-rs/cni-cache/v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CacheRecord {
    pub kind: String,
    pub sandbox_id: String,
    pub network: NetworkList,
    pub cni_args: String,
    pub capability_args: Map<String, Value>,
    /// None while ADD runs (or if it was cut off): DEL then runs without prevResult.
    pub result: Option<Value>,
}

impl CacheRecord {
    pub fn new(
        sandbox_id: &str,
        network: NetworkList,
        cni_args: String,
        capability_args: Map<String, Value>,
    ) -> Self {
        CacheRecord {
            kind: KIND.into(),
            sandbox_id: sandbox_id.into(),
            network,
            cni_args,
            capability_args,
            result: None,
        }
    }
}

/// cache_dir/SANDBOX_ID.json
pub(crate) fn path(cache_dir: &Path, sandbox_id: &str) -> PathBuf {
    cache_dir.join(format!("{sandbox_id}.json"))
}

pub(crate) fn save(path: &Path, record: &CacheRecord) -> Result<(), NetworkError> {
    let err = |reason: String| NetworkError::Cache {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    let bytes = serde_json::to_vec_pretty(record).map_err(|e| err(e.to_string()))?;
    runtime_state::write_atomic(path, &bytes).map_err(|e| err(e.to_string()))
}

/// None when there is no record. A record that does not parse is an error the caller decides
/// about (teardown falls back to the current configuration).
pub(crate) fn load(path: &Path) -> Result<Option<CacheRecord>, NetworkError> {
    let err = |reason: String| NetworkError::Cache {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    };
    let record: CacheRecord = serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
    if record.kind != KIND {
        return Err(err(format!("unknown record kind {:?}", record.kind)));
    }
    Ok(Some(record))
}

pub(crate) fn remove(path: &Path) -> Result<(), NetworkError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(NetworkError::Cache {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
        _ => Ok(()),
    }
}
