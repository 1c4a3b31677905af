//! Admission under node pressure (upstream eviction manager's Admit): critical pods always
//! come in; under memory pressure alone only BestEffort pods are refused, unless they tolerate
//! the memory-pressure taint; any other pressure refuses every other pod.

use super::message::REASON;
use super::signals::Condition;
use crate::admission::Rejection;
use crate::admission::taints::tolerates;
use crate::pod_manager::{is_mirror_pod, is_static_pod};
use k8s_openapi::api::core::v1::{Pod, Taint};
use kubelet_kuberuntime::qos::{QosClass, qos_class};
use kubelet_nodeshutdown::{SYSTEM_CRITICAL_PRIORITY, effective_priority};
use kubelet_nodestatus::PressureInputs;

const MEMORY_PRESSURE_TAINT: &str = "node.kubernetes.io/memory-pressure";

/// Upstream IsCriticalPod: static, mirror, or at least system-critical priority. Such pods are
/// never evicted and always admitted.
pub fn is_critical(pod: &Pod) -> bool {
    is_static_pod(pod) || is_mirror_pod(pod) || effective_priority(pod) >= SYSTEM_CRITICAL_PRIORITY
}

/// The pressure conditions the node reports, in a fixed order.
pub fn conditions(pressure: &PressureInputs) -> Vec<Condition> {
    [
        (pressure.memory_pressure, Condition::Memory),
        (pressure.disk_pressure, Condition::Disk),
        (pressure.pid_pressure, Condition::Pid),
    ]
    .into_iter()
    .filter_map(|(on, c)| on.then_some(c))
    .collect()
}

pub fn admit(pod: &Pod, pressure: &PressureInputs) -> Result<(), Rejection> {
    let conditions = conditions(pressure);
    if conditions.is_empty() || is_critical(pod) {
        return Ok(());
    }
    if conditions == [Condition::Memory] {
        if qos_class(pod) != QosClass::BestEffort {
            return Ok(());
        }
        let taint = Taint {
            key: MEMORY_PRESSURE_TAINT.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref());
        if tolerations
            .unwrap_or_default()
            .iter()
            .any(|t| tolerates(t, &taint))
        {
            return Ok(());
        }
    }
    let names: Vec<&str> = conditions.iter().map(|c| c.as_str()).collect();
    tracing::info!(
        pod = %crate::pod_manager::full_name(pod),
        node_condition = ?names,
        "Failed to admit pod to node"
    );
    Err(Rejection {
        reason: REASON.into(),
        message: format!("The node had condition: [{}]. ", names.join(" ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod(spec: Value, annotations: Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "busybox",
            "resources": spec.get("resources").cloned().unwrap_or(json!({}))}]);
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u", "annotations": annotations},
            "spec": spec
        }))
        .unwrap()
    }

    fn pressure(memory: bool, disk: bool, pid: bool) -> PressureInputs {
        PressureInputs {
            memory_pressure: memory,
            disk_pressure: disk,
            pid_pressure: pid,
            ..Default::default()
        }
    }

    #[test]
    fn memory_pressure_refuses_best_effort_pods_only() {
        let best_effort = pod(json!({}), json!({}));
        let burstable = pod(
            json!({"resources": {"requests": {"memory": "10Mi"}}}),
            json!({}),
        );
        let memory = pressure(true, false, false);
        let refused = admit(&best_effort, &memory).unwrap_err();
        assert_eq!(refused.reason, "Evicted");
        assert_eq!(
            refused.message,
            "The node had condition: [MemoryPressure]. "
        );
        assert!(admit(&burstable, &memory).is_ok());
        assert!(admit(&best_effort, &pressure(false, false, false)).is_ok());
    }

    #[test]
    fn tolerating_memory_pressure_admits_a_best_effort_pod() {
        let tolerant = pod(
            json!({"tolerations": [{"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}]}),
            json!({}),
        );
        assert!(admit(&tolerant, &pressure(true, false, false)).is_ok());
        // The toleration does not help under any other pressure.
        let refused = admit(&tolerant, &pressure(true, true, false)).unwrap_err();
        assert_eq!(
            refused.message,
            "The node had condition: [MemoryPressure DiskPressure]. "
        );
    }

    #[test]
    fn other_pressure_refuses_everyone_but_critical_pods() {
        let burstable = pod(
            json!({"resources": {"requests": {"memory": "10Mi"}}}),
            json!({}),
        );
        let refused = admit(&burstable, &pressure(false, true, false)).unwrap_err();
        assert_eq!(refused.message, "The node had condition: [DiskPressure]. ");
        assert!(admit(&burstable, &pressure(false, false, true)).is_err());
        let critical = pod(json!({"priority": 2_000_000_000}), json!({}));
        let static_pod = pod(json!({}), json!({"kubernetes.io/config.source": "file"}));
        let mirror = pod(json!({}), json!({"kubernetes.io/config.mirror": "abc"}));
        for p in [&critical, &static_pod, &mirror] {
            assert!(is_critical(p));
            assert!(admit(p, &pressure(true, true, true)).is_ok());
        }
        assert!(!is_critical(&burstable));
    }
}
