//! The runc/crun command line. Both speak the same CLI and keep their state under `--root`.

use crate::SpecError;
use k8s_cri::v1::LinuxContainerResources;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use thiserror::Error;
use tracing::debug_span;

/// One OCI runtime: a handler name, its binary and its state root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciRuntime {
    pub handler: String,
    pub binary: PathBuf,
    pub root: PathBuf,
}

/// A container's state as `runtime state` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OciState {
    pub id: String,
    /// 0 once the container has stopped.
    #[serde(default)]
    pub pid: i32,
    pub status: OciStatus,
    #[serde(default)]
    pub bundle: PathBuf,
    /// RFC 3339, as the runtime writes it.
    #[serde(default)]
    pub created: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OciStatus {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

/// What an exec'd process wrote and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The exit code, or 128 + the signal that killed the process (as runc reports it).
    pub exit_code: i32,
}

#[derive(Debug, Error)]
pub enum OciError {
    #[error("cannot run {binary} {command}: {source}")]
    Spawn {
        binary: PathBuf,
        command: String,
        source: std::io::Error,
    },
    #[error("{binary} {command} {id} failed ({status}): {stderr}")]
    Failed {
        binary: PathBuf,
        command: String,
        id: String,
        status: String,
        stderr: String,
    },
    #[error("cannot decode the state of {id} from {binary}: {source}")]
    Decode {
        binary: PathBuf,
        id: String,
        source: serde_json::Error,
    },
    #[error("cannot prepare {path} for {id}: {source}")]
    File {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("exec in {id}: timeout {timeout:?} exceeded")]
    ExecTimeout { id: String, timeout: Duration },
    #[error("cannot convert the resources for {id}: {source}")]
    Resources { id: String, source: SpecError },
    /// containerd's words, which users and tests match on.
    #[error("no runtime for {handler:?} is configured (known: {known:?})")]
    UnknownHandler { handler: String, known: Vec<String> },
}

impl OciRuntime {
    /// `BINARY --root ROOT ARGS...`
    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root);
        cmd
    }

    /// `create --bundle B --pid-file P [--console-socket S] ID`, for the monitor to run with
    /// the container's stdio.
    pub fn create_command(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
    ) -> Command {
        let mut cmd = self.command();
        cmd.arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file);
        if let Some(socket) = console_socket {
            cmd.arg("--console-socket").arg(socket);
        }
        cmd.arg(id);
        cmd
    }

    /// Runs `ARGS... ID` to completion with the output captured.
    pub(crate) fn run(&self, id: &str, args: &[OsString]) -> Result<Output, OciError> {
        let verb = args
            .first()
            .map_or(String::new(), |a| a.to_string_lossy().into_owned());
        let mut cmd = self.command();
        cmd.args(args)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let output = cmd.output().map_err(|source| OciError::Spawn {
            binary: self.binary.clone(),
            command: verb.clone(),
            source,
        })?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(self.failed(&verb, id, &output))
        }
    }

    pub(crate) fn failed(&self, verb: &str, id: &str, output: &Output) -> OciError {
        OciError::Failed {
            binary: self.binary.clone(),
            command: verb.to_string(),
            id: id.to_string(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        }
    }

    /// Whether a failure says the container is unknown (runc: "container does not exist";
    /// crun: its state dir under the root is missing).
    fn is_missing(&self, id: &str, err: &OciError) -> bool {
        let OciError::Failed { stderr, .. } = err else {
            return false;
        };
        stderr.contains("does not exist")
            || (stderr.contains("No such file or directory")
                && stderr.contains(&*self.root.join(id).to_string_lossy()))
    }

    pub fn start(&self, id: &str) -> Result<(), OciError> {
        let _span = debug_span!("oci_start", container_id = id).entered();
        self.run(id, &["start".into()]).map(drop)
    }

    /// `kill [--all] ID SIGNAL`.
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), OciError> {
        let _span = debug_span!("oci_kill", container_id = id, signal).entered();
        let mut cmd = self.command();
        cmd.arg("kill");
        if all {
            cmd.arg("--all");
        }
        cmd.arg(id)
            .arg(signal.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let output = cmd.output().map_err(|source| OciError::Spawn {
            binary: self.binary.clone(),
            command: "kill".into(),
            source,
        })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(self.failed("kill", id, &output))
        }
    }

    /// `delete [--force] ID`; a container the runtime does not know is already deleted.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), OciError> {
        let _span = debug_span!("oci_delete", container_id = id, force).entered();
        let mut args: Vec<OsString> = vec!["delete".into()];
        if force {
            args.push("--force".into());
        }
        match self.run(id, &args) {
            Err(e) if self.is_missing(id, &e) => Ok(()),
            other => other.map(drop),
        }
    }

    /// The container's state; None when the runtime does not know it.
    pub fn state(&self, id: &str) -> Result<Option<OciState>, OciError> {
        match self.run(id, &["state".into()]) {
            Ok(out) => serde_json::from_slice(&out.stdout)
                .map(Some)
                .map_err(|source| OciError::Decode {
                    binary: self.binary.clone(),
                    id: id.to_string(),
                    source,
                }),
            Err(e) if self.is_missing(id, &e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `update --resources FILE ID` with the CRI resources as OCI LinuxResources.
    pub fn update(&self, id: &str, resources: &LinuxContainerResources) -> Result<(), OciError> {
        let _span = debug_span!("oci_update", container_id = id).entered();
        let oci = crate::resources::to_oci(
            Some(resources),
            None,
            Vec::new(),
            crate::resources::CgroupSupport::probe(),
        )
        .map_err(|source| OciError::Resources {
            id: id.to_string(),
            source,
        })?;
        let json = serde_json::to_vec(&oci).map_err(|e| OciError::Resources {
            id: id.to_string(),
            source: SpecError::Encode(e),
        })?;
        let file = TempFile::new(id, "resources", Some(&json))?;
        self.run(
            id,
            &[
                "update".into(),
                "--resources".into(),
                file.path.clone().into(),
            ],
        )
        .map(drop)
    }
}

/// A file that exists for one runtime call, removed when dropped.
pub(crate) struct TempFile {
    pub path: PathBuf,
}

impl TempFile {
    /// A unique path in the temp dir, written with `bytes` when given (else left for the
    /// runtime to create).
    pub(crate) fn new(id: &str, what: &str, bytes: Option<&[u8]>) -> Result<TempFile, OciError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let short: String = id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect();
        let path = std::env::temp_dir().join(format!(
            "kubelet-rs-{what}-{}-{}-{short}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
        ));
        if let Some(bytes) = bytes {
            std::fs::write(&path, bytes).map_err(|source| OciError::File {
                id: id.to_string(),
                path: path.clone(),
                source,
            })?;
        }
        Ok(TempFile { path })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
