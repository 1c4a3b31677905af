//! The UIDs of the static pods the runtime runs at kubelet start, read from its sandboxes, so the
//! file and HTTP sources adopt them for manifests without `metadata.uid` (see
//! [`kubelet_sources::AdoptedUids`]): a node switched from the upstream kubelet, or a restart of
//! ours, keeps those pods' containers.

use std::collections::HashMap;

use kubelet_cri::Runtime;
use kubelet_cri::api::{PodSandbox, PodSandboxState};
use kubelet_kuberuntime::labels::{POD_NAME_LABEL, POD_NAMESPACE_LABEL, POD_UID_LABEL};
use kubelet_sources::{AdoptedUids, CONFIG_SOURCE_ANNOTATION, FILE_SOURCE, HTTP_SOURCE};

/// The running static pods' UIDs; none if the runtime cannot list its sandboxes (the pods then
/// get their content UIDs, as on a fresh node).
pub async fn running(runtime: &dyn Runtime) -> AdoptedUids {
    match runtime.list_pod_sandbox(None).await {
        Ok(sandboxes) => AdoptedUids::new(by_pod(&sandboxes)),
        Err(e) => {
            tracing::warn!("cannot list pod sandboxes, running static pods keep no UID: {e}");
            AdoptedUids::default()
        }
    }
}

/// (namespace, name) -> UID of the sandboxes of file and HTTP pods (both kubelets put the pod's
/// annotations, config source included, on its sandbox). A ready sandbox wins over a not-ready
/// one, then the newest.
fn by_pod(sandboxes: &[PodSandbox]) -> HashMap<(String, String), String> {
    let mut best: HashMap<(String, String), &PodSandbox> = HashMap::new();
    for sandbox in sandboxes {
        let source = sandbox.annotations.get(CONFIG_SOURCE_ANNOTATION);
        if !matches!(source.map(String::as_str), Some(FILE_SOURCE | HTTP_SOURCE)) {
            continue;
        }
        let label = |key: &str| sandbox.labels.get(key).filter(|v| !v.is_empty());
        let (Some(namespace), Some(name), Some(_)) = (
            label(POD_NAMESPACE_LABEL),
            label(POD_NAME_LABEL),
            label(POD_UID_LABEL),
        ) else {
            continue;
        };
        let rank = |s: &PodSandbox| {
            (
                s.state == PodSandboxState::SandboxReady as i32,
                s.created_at,
            )
        };
        best.entry((namespace.clone(), name.clone()))
            .and_modify(|kept| {
                if rank(sandbox) > rank(kept) {
                    *kept = sandbox;
                }
            })
            .or_insert(sandbox);
    }
    best.into_iter()
        .map(|(pod, sandbox)| (pod, sandbox.labels[POD_UID_LABEL].clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(source: &str, name: &str, uid: &str, ready: bool, created_at: i64) -> PodSandbox {
        let state = if ready {
            PodSandboxState::SandboxReady
        } else {
            PodSandboxState::SandboxNotready
        };
        PodSandbox {
            id: format!("{uid}-{created_at}"),
            state: state as i32,
            created_at,
            labels: [
                (POD_NAMESPACE_LABEL, "kube-system"),
                (POD_NAME_LABEL, name),
                (POD_UID_LABEL, uid),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            annotations: [(CONFIG_SOURCE_ANNOTATION.to_owned(), source.to_owned())].into(),
            ..Default::default()
        }
    }

    fn uid_of(map: &HashMap<(String, String), String>, name: &str) -> Option<String> {
        map.get(&("kube-system".to_owned(), name.to_owned()))
            .cloned()
    }

    #[test]
    fn static_pods_only() {
        let map = by_pod(&[
            sandbox("file", "etcd-n1", "u-file", true, 1),
            sandbox("http", "web-n1", "u-http", true, 1),
            sandbox("api", "dns", "u-api", true, 1),
            sandbox("local", "mine-n1", "u-local", true, 1),
        ]);
        assert_eq!(map.len(), 2);
        assert_eq!(uid_of(&map, "etcd-n1").as_deref(), Some("u-file"));
        assert_eq!(uid_of(&map, "web-n1").as_deref(), Some("u-http"));
    }

    #[test]
    fn ready_wins_then_newest() {
        let map = by_pod(&[
            sandbox("file", "a", "old-ready", true, 1),
            sandbox("file", "a", "new-not-ready", false, 9),
            sandbox("file", "b", "old", false, 1),
            sandbox("file", "b", "new", false, 2),
        ]);
        assert_eq!(uid_of(&map, "a").as_deref(), Some("old-ready"));
        assert_eq!(uid_of(&map, "b").as_deref(), Some("new"));
    }

    #[test]
    fn sandboxes_without_pod_identity_are_ignored() {
        let mut bare = sandbox("file", "a", "u", true, 1);
        bare.labels.remove(POD_UID_LABEL);
        assert!(by_pod(&[bare]).is_empty());
    }
}
