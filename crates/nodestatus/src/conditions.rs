//! The node conditions the kubelet owns, with upstream's reasons, messages and time semantics:
//! every computation refreshes lastHeartbeatTime; lastTransitionTime moves only when the
//! status does.

use k8s_openapi::api::core::v1::NodeCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::info::PressureInputs;

const TRUE: &str = "True";
const FALSE: &str = "False";
const UNKNOWN: &str = "Unknown";

/// Wording of one pressure condition in both states.
struct PressureWords {
    kind: &'static str,
    pressured: (&'static str, &'static str),
    fine: (&'static str, &'static str),
}

const MEMORY: PressureWords = PressureWords {
    kind: "MemoryPressure",
    pressured: (
        "KubeletHasInsufficientMemory",
        "kubelet has insufficient memory available",
    ),
    fine: (
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
};

const DISK: PressureWords = PressureWords {
    kind: "DiskPressure",
    pressured: ("KubeletHasDiskPressure", "kubelet has disk pressure"),
    fine: ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
};

const PID: PressureWords = PressureWords {
    kind: "PIDPressure",
    pressured: (
        "KubeletHasInsufficientPID",
        "kubelet has insufficient PID available",
    ),
    fine: (
        "KubeletHasSufficientPID",
        "kubelet has sufficient PID available",
    ),
};

/// Updates `conditions` (the Node's current list, others' conditions included) in place, in
/// upstream's order: MemoryPressure, DiskPressure, PIDPressure, Ready.
/// `missing_capacity` names required resources absent from capacity, which make the node not ready.
pub fn update(
    conditions: &mut Vec<NodeCondition>,
    inputs: &PressureInputs,
    missing_capacity: &[&str],
    now: &Time,
) {
    set_pressure(conditions, &MEMORY, inputs.memory_pressure, now);
    set_pressure(conditions, &DISK, inputs.disk_pressure, now);
    set_pressure(conditions, &PID, inputs.pid_pressure, now);
    set_ready(conditions, inputs, missing_capacity, now);
}

fn set_pressure(
    conditions: &mut Vec<NodeCondition>,
    words: &PressureWords,
    pressure: bool,
    now: &Time,
) {
    let index = match conditions.iter().position(|c| c.type_ == words.kind) {
        Some(i) => i,
        None => {
            conditions.push(NodeCondition {
                type_: words.kind.to_string(),
                status: UNKNOWN.to_string(),
                ..NodeCondition::default()
            });
            conditions.len() - 1
        }
    };
    let condition = &mut conditions[index];
    condition.last_heartbeat_time = Some(now.clone());
    let (status, (reason, message)) = if pressure {
        (TRUE, words.pressured)
    } else {
        (FALSE, words.fine)
    };
    // As upstream, reason and message are written on a transition only.
    if condition.status != status {
        condition.status = status.to_string();
        condition.reason = Some(reason.to_string());
        condition.message = Some(message.to_string());
        condition.last_transition_time = Some(now.clone());
    }
}

fn set_ready(
    conditions: &mut Vec<NodeCondition>,
    inputs: &PressureInputs,
    missing_capacity: &[&str],
    now: &Time,
) {
    let mut errors = inputs.not_ready_reasons.clone();
    if !missing_capacity.is_empty() {
        errors.push(format!(
            "missing node capacity for resources: {}",
            missing_capacity.join(", ")
        ));
    }
    let mut ready = if errors.is_empty() {
        NodeCondition {
            type_: "Ready".to_string(),
            status: TRUE.to_string(),
            reason: Some("KubeletReady".to_string()),
            message: Some("kubelet is posting ready status".to_string()),
            ..NodeCondition::default()
        }
    } else {
        NodeCondition {
            type_: "Ready".to_string(),
            status: FALSE.to_string(),
            reason: Some("KubeletNotReady".to_string()),
            message: Some(aggregate_message(&errors)),
            ..NodeCondition::default()
        }
    };
    ready.last_heartbeat_time = Some(now.clone());
    match conditions.iter_mut().find(|c| c.type_ == "Ready") {
        Some(existing) => {
            ready.last_transition_time = if existing.status == ready.status {
                existing.last_transition_time.clone()
            } else {
                Some(now.clone())
            };
            *existing = ready;
        }
        None => {
            ready.last_transition_time = Some(now.clone());
            conditions.push(ready);
        }
    }
}

/// An error list worded as upstream's utilerrors.NewAggregate: one message alone, several
/// as "[a, b]", repeats dropped.
fn aggregate_message(errors: &[String]) -> String {
    let mut unique: Vec<&str> = Vec::new();
    for error in errors {
        if !unique.contains(&error.as_str()) {
            unique.push(error);
        }
    }
    match unique.as_slice() {
        [one] => one.to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid time"))
    }

    fn find<'a>(conditions: &'a [NodeCondition], kind: &str) -> &'a NodeCondition {
        conditions.iter().find(|c| c.type_ == kind).expect(kind)
    }

    #[test]
    fn a_fresh_node_gets_four_conditions_in_upstream_order() {
        let mut conditions = Vec::new();
        update(&mut conditions, &PressureInputs::default(), &[], &at(100));
        let kinds: Vec<_> = conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            kinds,
            ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        );
        let memory = find(&conditions, "MemoryPressure");
        assert_eq!(memory.status, "False");
        assert_eq!(memory.reason.as_deref(), Some("KubeletHasSufficientMemory"));
        assert_eq!(
            memory.message.as_deref(),
            Some("kubelet has sufficient memory available")
        );
        let ready = find(&conditions, "Ready");
        assert_eq!(ready.status, "True");
        assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("kubelet is posting ready status")
        );
        assert_eq!(ready.last_transition_time, Some(at(100)));
    }

    #[test]
    fn heartbeat_moves_but_transition_stays_without_change() {
        let mut conditions = Vec::new();
        update(&mut conditions, &PressureInputs::default(), &[], &at(100));
        update(&mut conditions, &PressureInputs::default(), &[], &at(110));
        for c in &conditions {
            assert_eq!(c.last_heartbeat_time, Some(at(110)), "{}", c.type_);
            assert_eq!(c.last_transition_time, Some(at(100)), "{}", c.type_);
        }
    }

    #[test]
    fn pressure_and_not_ready_transition() {
        let mut conditions = Vec::new();
        update(&mut conditions, &PressureInputs::default(), &[], &at(100));
        let inputs = PressureInputs {
            disk_pressure: true,
            not_ready_reasons: vec!["container runtime is down".to_string()],
            ..PressureInputs::default()
        };
        update(&mut conditions, &inputs, &["pods"], &at(120));
        let disk = find(&conditions, "DiskPressure");
        assert_eq!(disk.status, "True");
        assert_eq!(disk.reason.as_deref(), Some("KubeletHasDiskPressure"));
        assert_eq!(disk.last_transition_time, Some(at(120)));
        assert_eq!(
            find(&conditions, "MemoryPressure").last_transition_time,
            Some(at(100))
        );
        let ready = find(&conditions, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("KubeletNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("[container runtime is down, missing node capacity for resources: pods]")
        );
        assert_eq!(ready.last_transition_time, Some(at(120)));
    }

    #[test]
    fn a_single_reason_is_the_whole_message() {
        let mut conditions = Vec::new();
        let inputs = PressureInputs {
            not_ready_reasons: vec!["PLEG is not healthy".to_string(); 2],
            ..PressureInputs::default()
        };
        update(&mut conditions, &inputs, &[], &at(100));
        let ready = find(&conditions, "Ready");
        assert_eq!(ready.message.as_deref(), Some("PLEG is not healthy"));
    }

    #[test]
    fn conditions_of_others_are_kept() {
        let mut conditions = vec![NodeCondition {
            type_: "NetworkUnavailable".to_string(),
            status: "False".to_string(),
            ..NodeCondition::default()
        }];
        update(&mut conditions, &PressureInputs::default(), &[], &at(100));
        assert_eq!(conditions.len(), 5);
        assert_eq!(conditions[0].type_, "NetworkUnavailable");
    }
}
