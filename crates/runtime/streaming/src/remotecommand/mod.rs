//! Exec and attach sessions (upstream kubelet/cri/streaming/remotecommand): which streams a
//! session has, running the backend on them, and how its end is reported.

pub mod spdy;

use std::sync::Arc;

use crate::backend::{Backend, BackendError, ExecIo};
use crate::status::Outcome;

/// The SPDY subprotocols, most preferred first (upstream SupportedStreamingProtocols).
pub const SPDY_PROTOCOLS: [&str; 4] = [
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// remotecommand protocol versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V1,
    V2,
    V3,
    V4,
    /// WebSocket only: adds the close-stream channel.
    V5,
}

impl Version {
    pub fn from_spdy(protocol: &str) -> Option<Self> {
        match protocol {
            "v4.channel.k8s.io" => Some(Self::V4),
            "v3.channel.k8s.io" => Some(Self::V3),
            "v2.channel.k8s.io" => Some(Self::V2),
            "channel.k8s.io" => Some(Self::V1),
            _ => None,
        }
    }

    /// v3 added the resize stream.
    pub fn supports_resize(self) -> bool {
        self >= Self::V3
    }

    /// The error stream's payload for `outcome`: Status JSON from v4 on, else the bare message
    /// (and nothing on success).
    pub fn status_payload(self, outcome: &Outcome) -> Option<Vec<u8>> {
        if self >= Self::V4 {
            Some(outcome.to_json())
        } else {
            outcome.to_text()
        }
    }
}

/// Which of the standard streams a session carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// What the session runs.
#[derive(Clone, Debug)]
pub enum Command {
    Exec {
        container_id: String,
        cmd: Vec<String>,
    },
    Attach {
        container_id: String,
    },
}

impl Command {
    pub async fn run(&self, backend: &Arc<dyn Backend>, io: ExecIo) -> Outcome {
        match self {
            Command::Exec { container_id, cmd } => {
                let result = backend.exec(container_id, cmd.clone(), io).await;
                log_failure("exec", container_id, &result);
                Outcome::of_exec(result, cmd)
            }
            Command::Attach { container_id } => {
                let result = backend.attach(container_id, io).await;
                log_failure("attach", container_id, &result);
                Outcome::of_attach(result)
            }
        }
    }
}

fn log_failure(what: &str, container_id: &str, result: &Result<(), BackendError>) {
    if let Err(e) = result {
        tracing::debug!(container_id, error = %e, "{what} ended with an error");
    }
}
