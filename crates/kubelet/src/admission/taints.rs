//! Taints and tolerations (upstream component-helpers FindMatchingUntoleratedTaint and
//! Toleration.ToleratesTaint). The pod is already bound, so only NoExecute taints matter here.

use k8s_openapi::api::core::v1::{Taint, Toleration};

pub const NO_EXECUTE: &str = "NoExecute";

/// Whether `t` tolerates `taint`: the effect (if set) and key (if set) match, and the value is
/// equal or the operator is Exists. An empty key with Exists tolerates every taint.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    if t.key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k != taint.key)
    {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// The first NoExecute taint no toleration tolerates.
pub fn untolerated_no_execute<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == NO_EXECUTE)
        .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        serde_json::from_value(json!({"key": key, "value": value, "effect": effect})).unwrap()
    }

    fn toleration(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn equal_and_exists() {
        let t = taint("dedicated", "db", NO_EXECUTE);
        let eq = |value: &str| {
            toleration(json!({"key": "dedicated", "operator": "Equal", "value": value}))
        };
        assert!(tolerates(&eq("db"), &t));
        assert!(!tolerates(&eq("web"), &t));
        let default_op = toleration(json!({"key": "dedicated", "value": "db"}));
        assert!(tolerates(&default_op, &t));
        let exists = toleration(json!({"key": "dedicated", "operator": "Exists"}));
        assert!(tolerates(&exists, &t));
        let other_key = toleration(json!({"key": "other", "operator": "Exists"}));
        assert!(!tolerates(&other_key, &t));
        let all = toleration(json!({"operator": "Exists"}));
        assert!(tolerates(&all, &t));
    }

    #[test]
    fn effect_must_match_when_set() {
        let t = taint("k", "v", NO_EXECUTE);
        let no_schedule =
            toleration(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"}));
        assert!(!tolerates(&no_schedule, &t));
        let no_execute =
            toleration(json!({"key": "k", "operator": "Exists", "effect": NO_EXECUTE}));
        assert!(tolerates(&no_execute, &t));
    }

    #[test]
    fn only_no_execute_taints_count() {
        let taints = [
            taint("a", "", "NoSchedule"),
            taint("b", "", "PreferNoSchedule"),
        ];
        assert!(untolerated_no_execute(&taints, &[]).is_none());
        let taints = [taint("a", "", "NoSchedule"), taint("b", "x", NO_EXECUTE)];
        assert_eq!(untolerated_no_execute(&taints, &[]).unwrap().key, "b");
        let tol = [toleration(json!({"key": "b", "operator": "Exists"}))];
        assert!(untolerated_no_execute(&taints, &tol).is_none());
    }
}
