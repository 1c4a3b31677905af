//! The kube-apiserver's audit log: who asked what and what they got, so tests can check the
//! kubelet's requests against the Node authorizer and NodeRestriction.

use std::path::Path;

/// The policy: the metadata of every request of nodes and bootstrapping kubelets.
pub const POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  userGroups: [\"system:nodes\", \"system:bootstrappers\"]
- level: None
";

/// One answered request.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub user: String,
    pub verb: String,
    pub uri: String,
    pub code: u16,
    /// The answer's message, for refusals.
    pub message: String,
}

/// The records of the log at `path`, oldest first; lines that are not complete events (one
/// still being written) are left out.
pub fn read(path: &Path) -> Vec<AuditRecord> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|event| AuditRecord {
            user: event["user"]["username"]
                .as_str()
                .unwrap_or_default()
                .into(),
            verb: event["verb"].as_str().unwrap_or_default().into(),
            uri: event["requestURI"].as_str().unwrap_or_default().into(),
            code: event["responseStatus"]["code"]
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or_default(),
            message: event["responseStatus"]["message"]
                .as_str()
                .unwrap_or_default()
                .into(),
        })
        .collect()
}
