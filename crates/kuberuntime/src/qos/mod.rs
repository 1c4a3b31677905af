//! Pod QoS class (upstream pkg/apis/core/v1/helper/qos), the pod's cgroup under the QoS
//! hierarchy (pkg/kubelet/cm, cgroupfs driver) and the OOM score a container gets
//! (pkg/kubelet/qos/policy.go).

pub mod cgroup_name;

pub use cgroup_name::CgroupDriver;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;
use std::fmt;
use tracing::warn;

pub const RESOURCE_CPU: &str = "cpu";
pub const RESOURCE_MEMORY: &str = "memory";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// The name the API uses in `status.qosClass`.
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }

    fn from_status(s: &str) -> Option<Self> {
        [
            QosClass::Guaranteed,
            QosClass::Burstable,
            QosClass::BestEffort,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

impl fmt::Display for QosClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type ResourceList = BTreeMap<String, Quantity>;

/// A resource amount in the unit the QoS rules compare: millicores, or bytes.
fn amount(name: &str, q: &Quantity) -> i64 {
    let parsed = if name == RESOURCE_CPU {
        kubelet_quantity::milli_value(&q.0)
    } else {
        kubelet_quantity::value(&q.0)
    };
    parsed.unwrap_or_else(|e| {
        warn!(resource = name, error = %e, "ignoring an unparsable resource quantity");
        0
    })
}

/// The pod's QoS class (`GetPodQOS`): the class recorded in the status when there is one,
/// else computed from the cpu and memory requests and limits of its containers and init
/// containers. Only positive amounts count.
pub fn qos_class(pod: &Pod) -> QosClass {
    if let Some(class) = pod
        .status
        .as_ref()
        .and_then(|s| s.qos_class.as_deref())
        .and_then(QosClass::from_status)
    {
        return class;
    }
    compute_qos_class(pod)
}

fn compute_qos_class(pod: &Pod) -> QosClass {
    let mut requests: BTreeMap<&str, i64> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i64> = BTreeMap::new();
    let mut guaranteed = true;
    for c in all_containers(pod) {
        let resources = c.resources.as_ref();
        for (name, q) in supported(resources.and_then(|r| r.requests.as_ref())) {
            *requests.entry(name).or_default() += q;
        }
        let mut limits_found = 0;
        for (name, q) in supported(resources.and_then(|r| r.limits.as_ref())) {
            limits_found += 1;
            *limits.entry(name).or_default() += q;
        }
        if limits_found < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    if guaranteed
        && requests
            .iter()
            .all(|(name, req)| limits.get(name) == Some(req))
        && requests.len() == limits.len()
    {
        return QosClass::Guaranteed;
    }
    QosClass::Burstable
}

/// The positive cpu and memory amounts of a resource list.
fn supported(list: Option<&ResourceList>) -> impl Iterator<Item = (&'static str, i64)> + '_ {
    [RESOURCE_CPU, RESOURCE_MEMORY]
        .into_iter()
        .filter_map(move |name| {
            let q = list?.get(name)?;
            Some((name, amount(name, q))).filter(|(_, v)| *v > 0)
        })
}

fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let init = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    containers.iter().chain(init)
}

/// The pod's cgroup name: `<root>/kubepods[/burstable|/besteffort]/pod<uid>`, or just the root
/// when QoS cgroups are off (upstream's no-op pod container manager). [`CgroupDriver`] gives
/// its path and the sandbox's cgroup parent under each driver.
pub fn pod_cgroup_parent(pod: &Pod, cgroup_root: &str, cgroups_per_qos: bool) -> String {
    let mut parts: Vec<String> = cgroup_root
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if cgroups_per_qos {
        parts.push("kubepods".into());
        match qos_class(pod) {
            QosClass::Guaranteed => {}
            QosClass::Burstable => parts.push("burstable".into()),
            QosClass::BestEffort => parts.push("besteffort".into()),
        }
        parts.push(format!(
            "pod{}",
            pod.metadata.uid.as_deref().unwrap_or_default()
        ));
    }
    format!("/{}", parts.join("/"))
}

const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;
const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;
const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
const CONFIG_MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The container's `oom_score_adj` (`GetContainerOOMScoreAdjust`). Burstable containers get
/// 1000 - 1000*request/capacity, kept within (3, 999]; a sidecar never scores above the
/// pod's smallest regular container.
pub fn oom_score_adj(pod: &Pod, container: &Container, memory_capacity: u64) -> i64 {
    if is_node_critical(pod) {
        return GUARANTEED_OOM_SCORE_ADJ;
    }
    match qos_class(pod) {
        QosClass::Guaranteed => return GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => return BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {}
    }
    let capacity = i64::try_from(memory_capacity).unwrap_or(i64::MAX).max(1);
    let score =
        |request: i64| 1000 - (1000i128 * i128::from(request) / i128::from(capacity)) as i64;
    let mut adj = score(memory_request(container));
    if is_sidecar(pod, container) {
        let min_regular = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().map(memory_request).min())
            .unwrap_or_default();
        if min_regular != 0 {
            adj = adj.min(score(min_regular));
        }
    }
    if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ {
        return 1000 + GUARANTEED_OOM_SCORE_ADJ;
    }
    if adj == BEST_EFFORT_OOM_SCORE_ADJ {
        return adj - 1;
    }
    adj
}

fn memory_request(c: &Container) -> i64 {
    c.resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get(RESOURCE_MEMORY))
        .map(|q| amount(RESOURCE_MEMORY, q))
        .unwrap_or_default()
}

/// An init container with `restartPolicy: Always`.
fn is_sidecar(pod: &Pod, container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
        && pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .is_some_and(|init| init.iter().any(|c| c.name == container.name))
}

/// `IsNodeCriticalPod`: a critical pod (static, mirror, or priority at least system-critical)
/// in the `system-node-critical` priority class.
pub fn is_node_critical(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let annotations = pod.metadata.annotations.as_ref();
    let is_static = annotations
        .and_then(|a| a.get(CONFIG_SOURCE_ANNOTATION))
        .is_some_and(|source| source != "api");
    let is_mirror = annotations.is_some_and(|a| a.contains_key(CONFIG_MIRROR_ANNOTATION));
    let high_priority = spec
        .and_then(|s| s.priority)
        .is_some_and(|p| p >= SYSTEM_CRITICAL_PRIORITY);
    (is_static || is_mirror || high_priority)
        && spec.and_then(|s| s.priority_class_name.as_deref()) == Some("system-node-critical")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn list(items: &[(&str, &str)]) -> Option<ResourceList> {
        (!items.is_empty()).then(|| {
            items
                .iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect()
        })
    }

    fn container(name: &str, requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        Container {
            name: name.into(),
            resources: Some(ResourceRequirements {
                requests: list(requests),
                limits: list(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(containers: Vec<Container>, init: Vec<Container>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                uid: Some("u1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers,
                init_containers: Some(init),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const FULL: &[(&str, &str)] = &[("cpu", "100m"), ("memory", "100Mi")];

    #[test]
    fn qos_table() {
        let table: Vec<(Pod, QosClass)> = vec![
            (
                pod(vec![container("a", &[], &[])], vec![]),
                QosClass::BestEffort,
            ),
            (
                pod(
                    vec![container("a", &[], &[("nvidia.com/gpu", "1")])],
                    vec![],
                ),
                QosClass::BestEffort,
            ),
            (
                pod(vec![container("a", &[("cpu", "0")], &[])], vec![]),
                QosClass::BestEffort,
            ),
            (
                pod(vec![container("a", FULL, FULL)], vec![]),
                QosClass::Guaranteed,
            ),
            (
                pod(
                    vec![container("a", FULL, FULL), container("b", FULL, FULL)],
                    vec![],
                ),
                QosClass::Guaranteed,
            ),
            (
                pod(
                    vec![container("a", FULL, FULL)],
                    vec![container("i", &[], &[])],
                ),
                QosClass::Burstable,
            ),
            (
                pod(
                    vec![container("a", FULL, FULL), container("b", &[], &[])],
                    vec![],
                ),
                QosClass::Burstable,
            ),
            (
                pod(
                    vec![container("a", &[("cpu", "100m")], &[("cpu", "100m")])],
                    vec![],
                ),
                QosClass::Burstable,
            ),
            (
                pod(
                    vec![container("a", &[("cpu", "50m"), ("memory", "100Mi")], FULL)],
                    vec![],
                ),
                QosClass::Burstable,
            ),
            (
                pod(vec![container("a", &[("memory", "1Gi")], &[])], vec![]),
                QosClass::Burstable,
            ),
        ];
        for (i, (p, want)) in table.iter().enumerate() {
            assert_eq!(qos_class(p), *want, "case {i}");
        }
    }

    #[test]
    fn status_qos_class_wins() {
        let mut p = pod(vec![container("a", &[], &[])], vec![]);
        p.status = Some(PodStatus {
            qos_class: Some("Burstable".into()),
            ..Default::default()
        });
        assert_eq!(qos_class(&p), QosClass::Burstable);
    }

    #[test]
    fn cgroup_parents() {
        let guaranteed = pod(vec![container("a", FULL, FULL)], vec![]);
        let burstable = pod(vec![container("a", FULL, &[])], vec![]);
        let best_effort = pod(vec![container("a", &[], &[])], vec![]);
        assert_eq!(pod_cgroup_parent(&guaranteed, "/", true), "/kubepods/podu1");
        assert_eq!(
            pod_cgroup_parent(&burstable, "/", true),
            "/kubepods/burstable/podu1"
        );
        assert_eq!(
            pod_cgroup_parent(&best_effort, "", true),
            "/kubepods/besteffort/podu1"
        );
        assert_eq!(
            pod_cgroup_parent(&best_effort, "/x/", true),
            "/x/kubepods/besteffort/podu1"
        );
        assert_eq!(pod_cgroup_parent(&best_effort, "/x", false), "/x");
        assert_eq!(pod_cgroup_parent(&best_effort, "/", false), "/");
    }

    #[test]
    fn oom_scores() {
        const GI: u64 = 1 << 30;
        let guaranteed = pod(vec![container("a", FULL, FULL)], vec![]);
        assert_eq!(
            oom_score_adj(
                &guaranteed,
                &guaranteed.spec.as_ref().unwrap().containers[0],
                GI
            ),
            -997
        );
        let best_effort = pod(vec![container("a", &[], &[])], vec![]);
        assert_eq!(
            oom_score_adj(
                &best_effort,
                &best_effort.spec.as_ref().unwrap().containers[0],
                GI
            ),
            1000
        );

        let burstable = |req: &str| pod(vec![container("a", &[("memory", req)], &[])], vec![]);
        let score = |p: Pod| oom_score_adj(&p, &p.spec.as_ref().unwrap().containers[0], 10 * GI);
        assert_eq!(score(burstable("1Gi")), 900);
        assert_eq!(score(burstable("10Gi")), 3, "never below guaranteed + 1000");
        assert_eq!(score(burstable("1")), 999, "never equal to best effort");
        let cpu_only = pod(vec![container("a", &[("cpu", "1")], &[])], vec![]);
        assert_eq!(score(cpu_only), 999);
    }

    #[test]
    fn sidecar_scores_no_higher_than_smallest_regular_container() {
        let mut sidecar = container("side", &[("memory", "1Mi")], &[]);
        sidecar.restart_policy = Some("Always".into());
        let p = pod(
            vec![container("a", &[("memory", "5Gi")], &[])],
            vec![sidecar.clone()],
        );
        assert_eq!(oom_score_adj(&p, &sidecar, 10 << 30), 500);
    }

    #[test]
    fn node_critical_static_pods_are_protected() {
        let mut p = pod(vec![container("a", &[], &[])], vec![]);
        p.metadata.annotations =
            Some([(CONFIG_SOURCE_ANNOTATION.to_string(), "file".to_string())].into());
        p.spec.as_mut().unwrap().priority_class_name = Some("system-node-critical".into());
        assert!(is_node_critical(&p));
        assert_eq!(
            oom_score_adj(&p, &p.spec.as_ref().unwrap().containers[0], 1 << 30),
            -997
        );
        p.metadata.annotations = None;
        assert!(!is_node_critical(&p));
    }
}
