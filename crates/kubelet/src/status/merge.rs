//! What the kubelet writes over the API's pod status (upstream mergePodStatus): the fields and
//! conditions it owns, never a pod leaving Succeeded or Failed, and the JSON merge patch that
//! takes the API's status to the merged one.

use crate::status::generate::{FAILED, SUCCEEDED};
use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Map, Value};

/// Conditions the kubelet computes and owns (upstream PodConditionsByKubelet). PodScheduled is
/// the kubelet's too upstream, but its generated one is always True: the scheduler's is kept
/// when the API has one.
const KUBELET_CONDITIONS: [&str; 4] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
];
const POD_SCHEDULED: &str = "PodScheduled";
/// Shared with the control plane (upstream PodConditionSharedByKubelet): the kubelet's is sent
/// with the pod's move to a terminal phase.
const DISRUPTION_TARGET: &str = "DisruptionTarget";

pub fn is_terminal(phase: Option<&str>) -> bool {
    matches!(phase, Some(SUCCEEDED) | Some(FAILED))
}

/// Any container of the status still runs.
pub fn has_running_containers(status: &PodStatus) -> bool {
    [
        &status.init_container_statuses,
        &status.container_statuses,
        &status.ephemeral_container_statuses,
    ]
    .into_iter()
    .flatten()
    .flatten()
    .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
}

/// The status to write: `old` is the API's, `new` the kubelet's.
pub fn merge_pod_status(old: &PodStatus, new: &PodStatus) -> PodStatus {
    let mut merged = new.clone();
    let owned = |c: &PodCondition| KUBELET_CONDITIONS.contains(&c.type_.as_str());
    let old_conditions = old.conditions.as_deref().unwrap_or_default();
    let mut conditions: Vec<PodCondition> = old_conditions
        .iter()
        .filter(|c| !owned(c))
        .cloned()
        .collect();
    let has_scheduled = conditions.iter().any(|c| c.type_ == POD_SCHEDULED);
    let becomes_terminal = !is_terminal(old.phase.as_deref())
        && is_terminal(new.phase.as_deref())
        && !has_running_containers(new);
    for c in new.conditions.iter().flatten() {
        if owned(c) {
            let mut c = c.clone();
            // Same status as the API's: its transition time stands (a restarted kubelet
            // regenerates its own).
            if let Some(o) = old_conditions
                .iter()
                .find(|o| o.type_ == c.type_ && o.status == c.status)
            {
                c.last_transition_time = o.last_transition_time.clone();
            }
            conditions.push(c);
        } else if c.type_ == POD_SCHEDULED && !has_scheduled {
            conditions.push(c.clone());
        } else if c.type_ == DISRUPTION_TARGET && becomes_terminal {
            conditions.retain(|o| o.type_ != DISRUPTION_TARGET);
            conditions.push(c.clone());
        }
    }
    merged.conditions = (!conditions.is_empty()).then_some(conditions);
    // Fields others own.
    merged.resource_claim_statuses = old.resource_claim_statuses.clone();
    merged.nominated_node_name = old.nominated_node_name.clone();
    if old.start_time.is_some() {
        merged.start_time = old.start_time.clone();
    }

    let old_terminal = is_terminal(old.phase.as_deref());
    let new_terminal = is_terminal(merged.phase.as_deref());
    // Never out of Succeeded or Failed; and not into them while a container may still run.
    if old_terminal || (new_terminal && has_running_containers(new)) {
        merged.phase = old.phase.clone();
        merged.reason = old.reason.clone();
        merged.message = old.message.clone();
    }
    if is_terminal(merged.phase.as_deref()) {
        not_ready_when_terminal(&mut merged, old);
    }
    merged
}

/// A terminal pod is not ready, whatever the last probe said (upstream
/// generatePodReadyConditionForTerminalPhase).
fn not_ready_when_terminal(status: &mut PodStatus, old: &PodStatus) {
    let reason = if status.phase.as_deref() == Some(SUCCEEDED) {
        "PodCompleted"
    } else {
        "PodFailed"
    };
    for c in status.conditions.iter_mut().flatten() {
        if (c.type_ == "Ready" || c.type_ == "ContainersReady") && c.status == "True" {
            c.status = "False".into();
            c.reason = Some(reason.into());
            c.last_transition_time = old
                .conditions
                .iter()
                .flatten()
                .find(|o| o.type_ == c.type_ && o.status == "False")
                .and_then(|o| o.last_transition_time.clone())
                .or_else(|| Some(Time(k8s_openapi::jiff::Timestamp::now())));
        }
    }
}

/// The JSON merge patch (RFC 7386) that turns `old` into `new`: changed fields, nulls for removed
/// ones, lists whole. None when they are equal.
pub fn merge_patch(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(p) = merge_patch(ov, nv) {
                            patch.insert(k.clone(), p);
                        }
                    }
                    None if !nv.is_null() => {
                        patch.insert(k.clone(), nv.clone());
                    }
                    None => {}
                }
            }
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                patch.insert(k.clone(), Value::Null);
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        // A null in a patch means delete; a nested object replacing a scalar is sent whole.
        _ if old == new => None,
        _ => Some(new.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateRunning, ContainerStatus};
    use serde_json::json;

    fn cond(t: &str, s: &str, at: i64) -> PodCondition {
        PodCondition {
            type_: t.into(),
            status: s.into(),
            last_transition_time: Some(Time(
                k8s_openapi::jiff::Timestamp::from_second(at).unwrap(),
            )),
            ..Default::default()
        }
    }

    fn types(s: &PodStatus) -> Vec<(String, String)> {
        s.conditions
            .iter()
            .flatten()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect()
    }

    #[test]
    fn conditions_of_others_stay_and_owned_ones_are_replaced() {
        let old = PodStatus {
            conditions: Some(vec![
                cond("PodScheduled", "True", 10),
                cond("Ready", "False", 10),
                cond("example.com/gate", "True", 10),
            ]),
            ..Default::default()
        };
        let new = PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![
                cond("Ready", "True", 20),
                cond("Initialized", "True", 20),
                cond("PodScheduled", "True", 20),
            ]),
            ..Default::default()
        };
        let merged = merge_pod_status(&old, &new);
        assert_eq!(
            types(&merged),
            [
                ("PodScheduled".into(), "True".into()),
                ("example.com/gate".into(), "True".into()),
                ("Ready".into(), "True".into()),
                ("Initialized".into(), "True".into()),
            ]
        );
        let scheduled = &merged.conditions.as_ref().unwrap()[0];
        assert_eq!(
            scheduled.last_transition_time,
            cond("x", "x", 10).last_transition_time
        );
    }

    #[test]
    fn a_terminal_phase_is_never_left_nor_reached_with_running_containers() {
        let old = PodStatus {
            phase: Some("Failed".into()),
            reason: Some("DeadlineExceeded".into()),
            ..Default::default()
        };
        let new = PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![cond("Ready", "True", 5)]),
            ..Default::default()
        };
        let merged = merge_pod_status(&old, &new);
        assert_eq!(merged.phase.as_deref(), Some("Failed"));
        assert_eq!(merged.reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(types(&merged), [("Ready".into(), "False".into())]);

        let running = PodStatus {
            phase: Some("Failed".into()),
            container_statuses: Some(vec![ContainerStatus {
                name: "c".into(),
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let was_running = PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        };
        let merged = merge_pod_status(&was_running, &running);
        assert_eq!(merged.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn the_disruption_target_goes_with_the_terminal_phase() {
        let old = PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        };
        let mut new = PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![cond("DisruptionTarget", "True", 5)]),
            ..Default::default()
        };
        assert!(merge_pod_status(&old, &new).conditions.is_none());
        new.phase = Some("Failed".into());
        assert_eq!(
            types(&merge_pod_status(&old, &new)),
            [("DisruptionTarget".into(), "True".into())]
        );
    }

    #[test]
    fn merge_patch_sets_changes_and_nulls_removals() {
        let old = json!({"phase": "Pending", "podIP": "10.0.0.1", "conditions": [{"type": "A"}], "x": {"a": 1, "b": 2}});
        let new = json!({"phase": "Running", "conditions": [{"type": "A"}, {"type": "B"}], "x": {"a": 1, "b": 3}});
        assert_eq!(
            merge_patch(&old, &new).unwrap(),
            json!({"phase": "Running", "podIP": null, "conditions": [{"type": "A"}, {"type": "B"}], "x": {"b": 3}})
        );
        assert_eq!(merge_patch(&new, &new), None);
    }
}
