//! What a pod update (PUT or PATCH of the pod itself) may change in the spec, as the real
//! server's ValidatePodUpdate (v1.28) has it: container and init container images,
//! activeDeadlineSeconds (set or lowered, never removed), tolerations (additions only), a
//! negative terminationGracePeriodSeconds turned into 1, and scheduling gates removed. Anything
//! else is refused with upstream's message; the real server appends a go-cmp diff of the specs,
//! whose layout go-cmp randomises on purpose, so ours names the spec fields that differ instead.

use serde_json::Value;

use crate::error::ApiError;

const FORBIDDEN: &str = "spec: Forbidden: pod updates may not change fields other than \
`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,\
`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` \
(allow it to be set to 1 if it was previously negative)";

/// Refuses `given` as the next version of the pod `current` when its spec changes more than an
/// update may change. Both are defaulted already.
pub fn validate(current: &Value, given: &Value) -> Result<(), ApiError> {
    let old = &current["spec"];
    let new = &given["spec"];
    let mut causes = Vec::new();
    match (
        old["activeDeadlineSeconds"].as_i64(),
        new["activeDeadlineSeconds"].as_i64(),
    ) {
        (Some(before), Some(after)) if after > before => causes.push(format!(
            "spec.activeDeadlineSeconds: Invalid value: {after}: must be less than or equal to previous value"
        )),
        (Some(_), None) => causes.push(
            "spec.activeDeadlineSeconds: Invalid value: \"null\": must not update from a positive integer to nil value"
                .to_string(),
        ),
        _ => {}
    }
    let kept_tolerations = old["tolerations"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|t| new["tolerations"].as_array().is_some_and(|n| n.contains(t)));
    let mut mutated = new.clone();
    if let Some(spec) = mutated.as_object_mut() {
        for list in ["containers", "initContainers"] {
            let old_list = old[list].as_array();
            if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for (i, c) in containers.iter_mut().enumerate() {
                    if let Some(image) = old_list.and_then(|o| o.get(i)).map(|o| o["image"].clone())
                    {
                        c["image"] = image;
                    }
                }
            }
        }
        for field in ["activeDeadlineSeconds", "schedulingGates"] {
            match old.get(field) {
                Some(v) => spec.insert(field.into(), v.clone()),
                None => spec.remove(field),
            };
        }
        if kept_tolerations {
            match old.get("tolerations") {
                Some(v) => spec.insert("tolerations".into(), v.clone()),
                None => spec.remove("tolerations"),
            };
        }
        let negative = old["terminationGracePeriodSeconds"]
            .as_i64()
            .is_some_and(|g| g < 0);
        if negative && new["terminationGracePeriodSeconds"].as_i64() == Some(1) {
            spec.insert(
                "terminationGracePeriodSeconds".into(),
                old["terminationGracePeriodSeconds"].clone(),
            );
        }
    }
    let gates_only_removed = new["schedulingGates"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|g| {
            old["schedulingGates"]
                .as_array()
                .is_some_and(|o| o.contains(g))
        });
    if !gates_only_removed {
        causes.push("spec.schedulingGates: Forbidden: only deletion is allowed, but found new scheduling gate".into());
    }
    if mutated != *old {
        causes.push(format!(
            "{FORBIDDEN}\n  changed: {}",
            changed_fields(old, &mutated).join(" ")
        ));
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid {
        kind: "Pod".into(),
        name: given["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .into(),
        cause: match causes.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        },
    })
}

/// The top-level spec fields that differ, as `spec.FIELD`.
fn changed_fields(old: &Value, new: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (old, new) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| format!("spec.{k}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::validate;
    use serde_json::{Value, json};

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "web"}, "spec": spec})
    }

    fn base() -> Value {
        json!({
            "containers": [{"name": "app", "image": "busybox:1", "command": ["sleep", "1"]}],
            "tolerations": [{"key": "a", "operator": "Exists"}],
            "activeDeadlineSeconds": 60,
            "terminationGracePeriodSeconds": 30,
        })
    }

    fn cause(current: Value, given: Value) -> String {
        match validate(&pod(current), &pod(given)) {
            Err(e) => e.to_string(),
            Ok(()) => String::new(),
        }
    }

    #[test]
    fn images_deadlines_and_new_tolerations_may_change() {
        let mut next = base();
        next["containers"][0]["image"] = json!("busybox:2");
        next["activeDeadlineSeconds"] = json!(30);
        next["tolerations"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "b", "operator": "Exists"}));
        assert_eq!(cause(base(), next), "");
    }

    #[test]
    fn other_spec_fields_may_not() {
        let mut next = base();
        next["containers"][0]["command"] = json!(["sleep", "2"]);
        let text = cause(base(), next);
        assert!(
            text.contains("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"),
            "{text}"
        );
        assert!(text.ends_with("spec.containers"), "{text}");
        let mut next = base();
        next["tolerations"] = json!([]);
        assert!(cause(base(), next).contains("may not change fields other than"));
    }

    #[test]
    fn a_deadline_may_only_go_down() {
        let mut next = base();
        next["activeDeadlineSeconds"] = json!(90);
        assert!(cause(base(), next).contains(
            "spec.activeDeadlineSeconds: Invalid value: 90: must be less than or equal to previous value"
        ));
        let mut next = base();
        next.as_object_mut()
            .unwrap()
            .remove("activeDeadlineSeconds");
        assert!(
            cause(base(), next).contains("must not update from a positive integer to nil value")
        );
    }

    #[test]
    fn a_negative_grace_period_may_become_one() {
        let mut old = base();
        old["terminationGracePeriodSeconds"] = json!(-1);
        let mut next = old.clone();
        next["terminationGracePeriodSeconds"] = json!(1);
        assert_eq!(cause(old, next), "");
    }
}
