//! Which pods stop first on a node shutdown (upstream groupByPriority with the two groups that
//! shutdownGracePeriod and shutdownGracePeriodCriticalPods define).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

/// scheduling.SystemCriticalPriority: pods at or above it are stopped last.
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// The built-in priority classes and the values the API server's Priority admission gives them.
const SYSTEM_PRIORITY_CLASSES: [(&str, i32); 2] = [
    ("system-node-critical", SYSTEM_CRITICAL_PRIORITY + 1000),
    ("system-cluster-critical", SYSTEM_CRITICAL_PRIORITY),
];

/// Pods split by shutdown order, each group in the order given.
#[derive(Debug, Default, PartialEq)]
pub struct ShutdownGroups<'a> {
    /// Stopped first, within [`crate::ShutdownBudget::non_critical`].
    pub non_critical: Vec<&'a Pod>,
    /// Stopped after them, within [`crate::ShutdownBudget::critical`].
    pub critical: Vec<&'a Pod>,
}

/// Splits pods by priority like upstream: critical means a priority of at least
/// [`SYSTEM_CRITICAL_PRIORITY`]. Upstream looks at the priority alone (unlike IsCriticalPod, a
/// static pod is not critical by itself).
pub fn shutdown_groups(pods: &[Pod]) -> ShutdownGroups<'_> {
    let mut groups = ShutdownGroups::default();
    for pod in pods {
        if effective_priority(pod) >= SYSTEM_CRITICAL_PRIORITY {
            groups.critical.push(pod);
        } else {
            groups.non_critical.push(pod);
        }
    }
    groups
}

/// spec.priority, or 0 when unset as upstream. A pod that never went through the API server
/// (a static pod in standalone mode) has no resolved priority, so the two built-in system
/// classes are resolved here as the API server would have.
pub fn effective_priority(pod: &Pod) -> i32 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    spec.priority
        .or_else(|| {
            let class = spec.priority_class_name.as_deref()?;
            SYSTEM_PRIORITY_CLASSES
                .iter()
                .find(|(name, _)| *name == class)
                .map(|(_, value)| *value)
        })
        .unwrap_or(0)
}

/// The grace period a pod is stopped with: its group's budget, or its own
/// terminationGracePeriodSeconds when that is shorter.
pub fn pod_grace_period(pod: &Pod, group_budget: Duration) -> Duration {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.termination_grace_period_seconds)
        .map(|seconds| Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
        .map_or(group_budget, |own| own.min(group_budget))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pod(name: &str, priority: Option<i32>, class: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                priority,
                priority_class_name: class.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn names(pods: &[&Pod]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn critical_pods_go_last_and_each_group_keeps_input_order() {
        let pods = [
            pod("node-critical", Some(2_000_001_000), None),
            pod("web", None, None),
            pod("cluster-critical", Some(SYSTEM_CRITICAL_PRIORITY), None),
            pod("high-user", Some(1_000_000_000), None),
            pod("just-below", Some(SYSTEM_CRITICAL_PRIORITY - 1), None),
            pod("negative", Some(-5), None),
        ];
        let groups = shutdown_groups(&pods);
        assert_eq!(
            names(&groups.non_critical),
            ["web", "high-user", "just-below", "negative"]
        );
        assert_eq!(
            names(&groups.critical),
            ["node-critical", "cluster-critical"]
        );
    }

    #[test]
    fn system_classes_count_when_no_priority_was_resolved() {
        let pods = [
            pod("node", None, Some("system-node-critical")),
            pod("cluster", None, Some("system-cluster-critical")),
            pod("custom", None, Some("gold")),
            pod("resolved-low", Some(10), Some("system-node-critical")),
        ];
        let groups = shutdown_groups(&pods);
        assert_eq!(names(&groups.critical), ["node", "cluster"]);
        assert_eq!(names(&groups.non_critical), ["custom", "resolved-low"]);
    }

    #[test]
    fn a_pod_without_spec_is_not_critical() {
        let pods = [Pod::default()];
        let groups = shutdown_groups(&pods);
        assert_eq!(groups.non_critical.len(), 1);
        assert!(groups.critical.is_empty());
    }

    #[test]
    fn grace_period_is_the_shorter_of_budget_and_pod_setting() {
        let mut p = pod("p", None, None);
        let budget = Duration::from_secs(20);
        assert_eq!(pod_grace_period(&p, budget), budget);
        p.spec.as_mut().unwrap().termination_grace_period_seconds = Some(5);
        assert_eq!(pod_grace_period(&p, budget), Duration::from_secs(5));
        p.spec.as_mut().unwrap().termination_grace_period_seconds = Some(20);
        assert_eq!(pod_grace_period(&p, budget), budget);
        p.spec.as_mut().unwrap().termination_grace_period_seconds = Some(60);
        assert_eq!(pod_grace_period(&p, budget), budget);
        p.spec.as_mut().unwrap().termination_grace_period_seconds = Some(0);
        assert_eq!(pod_grace_period(&p, budget), Duration::ZERO);
    }
}
