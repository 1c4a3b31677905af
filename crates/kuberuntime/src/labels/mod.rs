//! The CRI labels and annotations the kubelet puts on sandboxes and containers
//! (upstream pkg/kubelet/kuberuntime/labels.go), and the readers that rebuild the kubelet's
//! view from them after a restart. Names and value formats are upstream's: crictl users and
//! log shippers filter on them, and a Go kubelet's containers must read back the same.

pub(crate) mod go_json;

use crate::hash::container_hash_hex;
use k8s_openapi::api::core::v1::{Container, ContainerPort, LifecycleHandler, Pod};
use std::collections::HashMap;
use std::str::FromStr;
use tracing::{debug, error};

pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";

pub const POD_DELETION_GRACE_PERIOD_ANNOTATION: &str = "io.kubernetes.pod.deletionGracePeriod";
pub const POD_TERMINATION_GRACE_PERIOD_ANNOTATION: &str =
    "io.kubernetes.pod.terminationGracePeriod";
pub const CONTAINER_HASH_ANNOTATION: &str = "io.kubernetes.container.hash";
/// Written by upstream v1.28-v1.30 with in-place resize on; read, never written.
pub const CONTAINER_HASH_WITHOUT_RESOURCES_ANNOTATION: &str =
    "io.kubernetes.container.hashWithoutResources";
pub const CONTAINER_RESTART_COUNT_ANNOTATION: &str = "io.kubernetes.container.restartCount";
pub const CONTAINER_TERMINATION_MESSAGE_PATH_ANNOTATION: &str =
    "io.kubernetes.container.terminationMessagePath";
pub const CONTAINER_TERMINATION_MESSAGE_POLICY_ANNOTATION: &str =
    "io.kubernetes.container.terminationMessagePolicy";
pub const CONTAINER_PRE_STOP_HANDLER_ANNOTATION: &str = "io.kubernetes.container.preStopHandler";
pub const CONTAINER_PORTS_ANNOTATION: &str = "io.kubernetes.container.ports";

pub type Labels = HashMap<String, String>;

/// Sandbox labels: the pod's own labels plus the pod's name, namespace and uid.
pub fn sandbox_labels(pod: &Pod) -> Labels {
    let mut labels: Labels = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    insert_pod_identity(&mut labels, pod);
    labels
}

/// Sandbox annotations: exactly the pod's annotations.
pub fn sandbox_annotations(pod: &Pod) -> Labels {
    pod.metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// Container labels: the pod's identity and the container's name (not the pod's labels).
pub fn container_labels(pod: &Pod, container: &Container) -> Labels {
    let mut labels = Labels::new();
    insert_pod_identity(&mut labels, pod);
    labels.insert(CONTAINER_NAME_LABEL.into(), container.name.clone());
    labels
}

fn insert_pod_identity(labels: &mut Labels, pod: &Pod) {
    let meta = &pod.metadata;
    labels.insert(POD_NAME_LABEL.into(), meta.name.clone().unwrap_or_default());
    labels.insert(
        POD_NAMESPACE_LABEL.into(),
        meta.namespace.clone().unwrap_or_default(),
    );
    labels.insert(POD_UID_LABEL.into(), meta.uid.clone().unwrap_or_default());
}

/// Container annotations: hash, restart count, termination message settings, grace periods,
/// the preStop handler and the ports. Pod annotations are not copied (upstream neither).
pub fn container_annotations(pod: &Pod, container: &Container, restart_count: u32) -> Labels {
    let mut a = Labels::new();
    a.insert(
        CONTAINER_HASH_ANNOTATION.into(),
        container_hash_hex(container),
    );
    a.insert(
        CONTAINER_RESTART_COUNT_ANNOTATION.into(),
        restart_count.to_string(),
    );
    a.insert(
        CONTAINER_TERMINATION_MESSAGE_PATH_ANNOTATION.into(),
        container
            .termination_message_path
            .clone()
            .unwrap_or_default(),
    );
    a.insert(
        CONTAINER_TERMINATION_MESSAGE_POLICY_ANNOTATION.into(),
        container
            .termination_message_policy
            .clone()
            .unwrap_or_default(),
    );
    if let Some(p) = pod.metadata.deletion_grace_period_seconds {
        a.insert(POD_DELETION_GRACE_PERIOD_ANNOTATION.into(), p.to_string());
    }
    if let Some(p) = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
    {
        a.insert(
            POD_TERMINATION_GRACE_PERIOD_ANNOTATION.into(),
            p.to_string(),
        );
    }
    if let Some(pre_stop) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
    {
        a.insert(
            CONTAINER_PRE_STOP_HANDLER_ANNOTATION.into(),
            go_json::lifecycle_handler(pre_stop),
        );
    }
    if let Some(ports) = container.ports.as_ref().filter(|p| !p.is_empty()) {
        a.insert(
            CONTAINER_PORTS_ANNOTATION.into(),
            go_json::container_ports(ports),
        );
    }
    a
}

/// What a sandbox's labels say about its pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxLabels {
    pub pod_name: String,
    pub pod_namespace: String,
    pub pod_uid: String,
    /// The pod's own labels, without the three identity labels.
    pub pod_labels: Labels,
}

impl SandboxLabels {
    pub fn from_labels(labels: &Labels) -> Self {
        SandboxLabels {
            pod_name: string_value(labels, POD_NAME_LABEL),
            pod_namespace: string_value(labels, POD_NAMESPACE_LABEL),
            pod_uid: string_value(labels, POD_UID_LABEL),
            pod_labels: labels
                .iter()
                .filter(|(k, _)| {
                    ![POD_NAME_LABEL, POD_NAMESPACE_LABEL, POD_UID_LABEL].contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// What a container's labels and annotations say about it. Missing or malformed values are
/// logged and defaulted (zero, empty, `None`) like upstream, so one odd container never stops
/// the kubelet from reading the rest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerInfo {
    pub pod_name: String,
    pub pod_namespace: String,
    pub pod_uid: String,
    pub container_name: String,
    pub hash: u64,
    pub hash_without_resources: Option<u64>,
    pub restart_count: u32,
    pub termination_message_path: String,
    pub termination_message_policy: String,
    pub deletion_grace_period: Option<i64>,
    pub termination_grace_period: Option<i64>,
    pub pre_stop_handler: Option<LifecycleHandler>,
    pub ports: Vec<ContainerPort>,
}

impl ContainerInfo {
    pub fn from_labels(labels: &Labels, annotations: &Labels) -> Self {
        ContainerInfo {
            pod_name: string_value(labels, POD_NAME_LABEL),
            pod_namespace: string_value(labels, POD_NAMESPACE_LABEL),
            pod_uid: string_value(labels, POD_UID_LABEL),
            container_name: string_value(labels, CONTAINER_NAME_LABEL),
            hash: annotations
                .get(CONTAINER_HASH_ANNOTATION)
                .and_then(|v| log_bad(CONTAINER_HASH_ANNOTATION, v, u64::from_str_radix(v, 16)))
                .unwrap_or_default(),
            hash_without_resources: annotations
                .get(CONTAINER_HASH_WITHOUT_RESOURCES_ANNOTATION)
                .and_then(|v| {
                    log_bad(
                        CONTAINER_HASH_WITHOUT_RESOURCES_ANNOTATION,
                        v,
                        u64::from_str_radix(v, 16),
                    )
                }),
            restart_count: parsed(annotations, CONTAINER_RESTART_COUNT_ANNOTATION)
                .unwrap_or_default(),
            termination_message_path: string_value(
                annotations,
                CONTAINER_TERMINATION_MESSAGE_PATH_ANNOTATION,
            ),
            termination_message_policy: string_value(
                annotations,
                CONTAINER_TERMINATION_MESSAGE_POLICY_ANNOTATION,
            ),
            deletion_grace_period: parsed(annotations, POD_DELETION_GRACE_PERIOD_ANNOTATION),
            termination_grace_period: parsed(annotations, POD_TERMINATION_GRACE_PERIOD_ANNOTATION),
            pre_stop_handler: json_value(annotations, CONTAINER_PRE_STOP_HANDLER_ANNOTATION),
            ports: json_value(annotations, CONTAINER_PORTS_ANNOTATION).unwrap_or_default(),
        }
    }
}

fn string_value(map: &Labels, key: &str) -> String {
    match map.get(key) {
        Some(v) => v.clone(),
        None => {
            debug!(
                label = key,
                "container lacks a label; it may be an old or foreign container"
            );
            String::new()
        }
    }
}

fn parsed<T: FromStr>(map: &Labels, key: &str) -> Option<T>
where
    T::Err: std::fmt::Display,
{
    map.get(key).and_then(|v| log_bad(key, v, v.parse()))
}

fn json_value<T: serde::de::DeserializeOwned>(map: &Labels, key: &str) -> Option<T> {
    map.get(key)
        .and_then(|v| log_bad(key, v, serde_json::from_str(v)))
}

fn log_bad<T, E: std::fmt::Display>(key: &str, value: &str, r: Result<T, E>) -> Option<T> {
    r.map_err(|e| error!(label = key, value, error = %e, "unable to parse label value"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ExecAction, Lifecycle, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("1234".into()),
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                annotations: Some(BTreeMap::from([("note".into(), "x".into())])),
                deletion_grace_period_seconds: Some(5),
                ..Default::default()
            },
            spec: Some(PodSpec {
                termination_grace_period_seconds: Some(30),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn container() -> Container {
        Container {
            name: "nginx".into(),
            image: Some("nginx:1".into()),
            termination_message_path: Some("/dev/termination-log".into()),
            termination_message_policy: Some("File".into()),
            lifecycle: Some(Lifecycle {
                pre_stop: Some(LifecycleHandler {
                    exec: Some(ExecAction {
                        command: Some(vec!["sleep".into(), "1".into()]),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ports: Some(vec![ContainerPort {
                container_port: 80,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn sandbox_labels_round_trip() {
        let p = pod();
        let labels = sandbox_labels(&p);
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(labels.get(POD_UID_LABEL).map(String::as_str), Some("1234"));
        let read = SandboxLabels::from_labels(&labels);
        assert_eq!(read.pod_name, "web");
        assert_eq!(read.pod_namespace, "default");
        assert_eq!(read.pod_uid, "1234");
        assert_eq!(
            read.pod_labels,
            Labels::from([("app".into(), "web".into())])
        );
        assert_eq!(
            sandbox_annotations(&p),
            Labels::from([("note".into(), "x".into())])
        );
    }

    #[test]
    fn container_labels_and_annotations_round_trip() {
        let (p, c) = (pod(), container());
        let labels = container_labels(&p, &c);
        assert_eq!(labels.len(), 4, "pod labels are not copied onto containers");
        let annotations = container_annotations(&p, &c, 3);
        assert_eq!(
            annotations[CONTAINER_HASH_ANNOTATION],
            container_hash_hex(&c)
        );
        assert_eq!(annotations[CONTAINER_RESTART_COUNT_ANNOTATION], "3");
        assert_eq!(annotations[POD_DELETION_GRACE_PERIOD_ANNOTATION], "5");
        assert_eq!(annotations[POD_TERMINATION_GRACE_PERIOD_ANNOTATION], "30");
        assert_eq!(
            annotations[CONTAINER_PRE_STOP_HANDLER_ANNOTATION],
            r#"{"exec":{"command":["sleep","1"]}}"#
        );
        assert_eq!(
            annotations[CONTAINER_PORTS_ANNOTATION],
            r#"[{"containerPort":80,"protocol":"TCP"}]"#
        );
        assert!(!annotations.contains_key("note"));

        let info = ContainerInfo::from_labels(&labels, &annotations);
        assert_eq!(info.container_name, "nginx");
        assert_eq!(info.pod_uid, "1234");
        assert_eq!(info.hash, crate::hash::container_hash(&c));
        assert_eq!(info.restart_count, 3);
        assert_eq!(info.termination_message_path, "/dev/termination-log");
        assert_eq!(info.termination_message_policy, "File");
        assert_eq!(info.deletion_grace_period, Some(5));
        assert_eq!(info.termination_grace_period, Some(30));
        assert_eq!(info.pre_stop_handler, c.lifecycle.unwrap().pre_stop);
        assert_eq!(info.ports, c.ports.unwrap());
    }

    #[test]
    fn optional_annotations_are_absent_when_unset() {
        let mut p = pod();
        p.metadata.deletion_grace_period_seconds = None;
        let c = Container {
            name: "a".into(),
            ..Default::default()
        };
        let annotations = container_annotations(&p, &c, 0);
        for key in [
            POD_DELETION_GRACE_PERIOD_ANNOTATION,
            CONTAINER_PRE_STOP_HANDLER_ANNOTATION,
            CONTAINER_PORTS_ANNOTATION,
        ] {
            assert!(!annotations.contains_key(key), "{key}");
        }
    }

    #[test]
    fn odd_values_default_like_upstream() {
        let labels = Labels::from([(CONTAINER_NAME_LABEL.into(), "c".into())]);
        let annotations = Labels::from([
            (CONTAINER_HASH_ANNOTATION.into(), "not-hex".into()),
            (CONTAINER_RESTART_COUNT_ANNOTATION.into(), "x".into()),
            (
                POD_TERMINATION_GRACE_PERIOD_ANNOTATION.into(),
                "soon".into(),
            ),
            (
                CONTAINER_PRE_STOP_HANDLER_ANNOTATION.into(),
                "{broken".into(),
            ),
        ]);
        let info = ContainerInfo::from_labels(&labels, &annotations);
        assert_eq!(info.container_name, "c");
        assert_eq!(info.pod_name, "");
        assert_eq!((info.hash, info.restart_count), (0, 0));
        assert_eq!(info.termination_grace_period, None);
        assert_eq!(info.pre_stop_handler, None);
        assert!(info.ports.is_empty());
    }
}
