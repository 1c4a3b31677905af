//! Required node affinity (upstream component-helpers nodeaffinity.GetRequiredNodeAffinity):
//! the pod's nodeSelector and its requiredDuringSchedulingIgnoredDuringExecution terms.

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm, Pod};
use std::collections::BTreeMap;

type Labels = BTreeMap<String, String>;

/// Whether `node` satisfies the pod's nodeSelector and required node affinity.
pub fn matches(pod: &Pod, node: &Node) -> bool {
    let empty = Labels::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let name = node.metadata.name.as_deref().unwrap_or("");
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    // The terms are ORed; an empty list matches no node.
    let affinity_ok = required.is_none_or(|selector| {
        selector
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, labels, name))
    });
    selector_ok && affinity_ok
}

/// A term's expressions and fields are ANDed; an empty term matches nothing, and so does a term
/// with an invalid requirement.
fn term_matches(term: &NodeSelectorTerm, labels: &Labels, node_name: &str) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| label_matches(r, labels) == Some(true))
        && fields
            .iter()
            .all(|r| field_matches(r, node_name) == Some(true))
}

/// `None` for a requirement upstream's selector parsing refuses.
fn label_matches(r: &NodeSelectorRequirement, labels: &Labels) -> Option<bool> {
    let values = r.values.as_deref().unwrap_or_default();
    let label = labels.get(&r.key);
    match r.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => None,
        "In" => Some(label.is_some_and(|l| values.contains(l))),
        "NotIn" => Some(label.is_none_or(|l| !values.contains(l))),
        "Exists" | "DoesNotExist" if !values.is_empty() => None,
        "Exists" => Some(label.is_some()),
        "DoesNotExist" => Some(label.is_none()),
        op @ ("Gt" | "Lt") => {
            let [bound] = values else { return None };
            let bound: i64 = bound.parse().ok()?;
            // A label that is absent or not an integer does not match.
            let Some(v) = label.and_then(|l| l.parse::<i64>().ok()) else {
                return Some(false);
            };
            Some(if op == "Gt" { v > bound } else { v < bound })
        }
        _ => None,
    }
}

/// Only `metadata.name` with In or NotIn and exactly one value is a valid field requirement.
fn field_matches(r: &NodeSelectorRequirement, node_name: &str) -> Option<bool> {
    if r.key != "metadata.name" {
        return None;
    }
    let [value] = r.values.as_deref().unwrap_or_default() else {
        return None;
    };
    match r.operator.as_str() {
        "In" => Some(node_name == value),
        "NotIn" => Some(node_name != value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn node() -> Node {
        serde_json::from_value(json!({"metadata": {"name": "node-a", "labels": {
            "zone": "a", "disk": "ssd", "cores": "8"
        }}}))
        .unwrap()
    }

    fn pod(spec_extra: Value) -> Pod {
        let mut spec = json!({"containers": [{"name": "c", "image": "i"}]});
        spec.as_object_mut()
            .unwrap()
            .extend(spec_extra.as_object().unwrap().clone());
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    fn with_terms(terms: Value) -> Pod {
        pod(json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
        }}}))
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> Value {
        json!({"matchExpressions": [{"key": key, "operator": op, "values": values}]})
    }

    #[test]
    fn node_selector() {
        assert!(matches(
            &pod(json!({"nodeSelector": {"zone": "a"}})),
            &node()
        ));
        assert!(!matches(
            &pod(json!({"nodeSelector": {"zone": "b"}})),
            &node()
        ));
        assert!(!matches(
            &pod(json!({"nodeSelector": {"gpu": "yes"}})),
            &node()
        ));
        assert!(matches(&pod(json!({})), &node()));
    }

    #[test]
    fn operators() {
        let cases = [
            (expr("zone", "In", &["a", "b"]), true),
            (expr("zone", "In", &["b"]), false),
            (expr("zone", "NotIn", &["b"]), true),
            (expr("zone", "NotIn", &["a"]), false),
            (expr("missing", "NotIn", &["a"]), true),
            (expr("disk", "Exists", &[]), true),
            (expr("gpu", "Exists", &[]), false),
            (expr("gpu", "DoesNotExist", &[]), true),
            (expr("disk", "DoesNotExist", &[]), false),
            (expr("cores", "Gt", &["4"]), true),
            (expr("cores", "Gt", &["8"]), false),
            (expr("cores", "Lt", &["16"]), true),
            (expr("zone", "Gt", &["1"]), false),
            // Invalid requirements match nothing.
            (expr("zone", "In", &[]), false),
            (expr("disk", "Exists", &["x"]), false),
            (expr("cores", "Gt", &["4", "5"]), false),
            (expr("cores", "Near", &["4"]), false),
        ];
        for (term, want) in cases {
            assert_eq!(matches(&with_terms(json!([term])), &node()), want, "{term}");
        }
    }

    #[test]
    fn terms_are_ored_and_requirements_anded() {
        let both = json!({"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a"]},
            {"key": "disk", "operator": "In", "values": ["hdd"]},
        ]});
        assert!(!matches(&with_terms(json!([both.clone()])), &node()));
        let other = expr("disk", "In", &["ssd"]);
        assert!(matches(&with_terms(json!([both, other])), &node()));
        assert!(!matches(&with_terms(json!([])), &node()));
        assert!(!matches(&with_terms(json!([{}])), &node()));
    }

    #[test]
    fn match_fields_on_the_node_name() {
        let field = |op: &str, v: &str| json!({"matchFields": [{"key": "metadata.name", "operator": op, "values": [v]}]});
        assert!(matches(
            &with_terms(json!([field("In", "node-a")])),
            &node()
        ));
        assert!(!matches(
            &with_terms(json!([field("In", "node-b")])),
            &node()
        ));
        assert!(matches(
            &with_terms(json!([field("NotIn", "node-b")])),
            &node()
        ));
        let bad =
            json!({"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["x"]}]});
        assert!(!matches(&with_terms(json!([bad])), &node()));
    }
}
