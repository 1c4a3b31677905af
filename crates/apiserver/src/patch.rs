//! JSON merge patch (RFC 7386) and the subset of strategic merge patch this server needs.
//!
//! Strategic merge patch is the JSON merge patch plus per-field list strategies from the Go
//! types' `patchStrategy`/`patchMergeKey` tags. This server knows the tags of the lists a
//! kubelet and kubectl patch (see [`list_strategy`]); every other list is replaced whole, as
//! a list without tags is upstream. The directives `$patch` (replace, delete, merge),
//! `$retainKeys`, `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>` are honoured.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// RFC 7386: objects merge key by key, null removes a key, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("was just made an object");
    for (k, v) in patch {
        if v.is_null() {
            target.remove(k);
        } else {
            merge_patch(target.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListStrategy {
    /// Items are objects merged by the value of this field.
    MergeByKey(&'static str),
    /// Items are scalars; the patch's items are added to the set.
    MergePrimitives,
}

/// The patch strategy of the list at `path` (field names from the object's root, list items
/// adding no step), from the core/v1 and meta/v1 type tags.
fn list_strategy(path: &str) -> Option<ListStrategy> {
    use ListStrategy::*;
    let last = path.rsplit('.').next().unwrap_or(path);
    let parent = path.rsplit('.').nth(1).unwrap_or_default();
    let is_container = matches!(
        parent,
        "containers" | "initContainers" | "ephemeralContainers"
    );
    Some(match (parent, last) {
        ("metadata", "ownerReferences") => MergeByKey("uid"),
        ("metadata", "finalizers") => MergePrimitives,
        ("spec", "containers" | "initContainers" | "ephemeralContainers") => MergeByKey("name"),
        ("spec", "volumes" | "imagePullSecrets") => MergeByKey("name"),
        ("spec", "ports") if path == "spec.ports" => MergeByKey("port"),
        (_, "ports") if is_container => MergeByKey("containerPort"),
        (_, "env") if is_container => MergeByKey("name"),
        (_, "volumeMounts") if is_container => MergeByKey("mountPath"),
        (_, "volumeDevices") if is_container => MergeByKey("devicePath"),
        ("status", "conditions") => MergeByKey("type"),
        (
            "status",
            "containerStatuses" | "initContainerStatuses" | "ephemeralContainerStatuses",
        ) => MergeByKey("name"),
        ("status", "podIPs" | "hostIPs") => MergeByKey("ip"),
        ("status", "addresses") => MergeByKey("type"),
        _ => return None,
    })
}

/// Applies a strategic merge patch to `target` (a whole object, so paths start at its root).
pub fn strategic_merge(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    merge_object(target, patch, "")
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

fn merge_object(target: &mut Value, patch: &Value, path: &str) -> Result<(), ApiError> {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = Value::Object(without_directives(patch));
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(bad(format!("unknown patch type: {other} in map at {path}"))),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let obj = target.as_object_mut().expect("was just made an object");
    let mut orders = Vec::new();
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            orders.push((field.to_string(), v));
        } else if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let remove = v
                .as_array()
                .ok_or_else(|| bad(format!("{k} must be a list")))?;
            if let Some(list) = obj.get_mut(field).and_then(Value::as_array_mut) {
                list.retain(|item| !remove.contains(item));
            }
        } else if k.starts_with('$') {
            continue;
        } else if v.is_null() {
            obj.remove(k);
        } else {
            let child = child_path(path, k);
            let slot = obj.entry(k.clone()).or_insert(Value::Null);
            match (v, list_strategy(&child)) {
                (Value::Array(items), Some(strategy)) => merge_list(slot, items, strategy, &child)?,
                (Value::Object(_), _) => merge_object(slot, v, &child)?,
                _ => *slot = v.clone(),
            }
        }
    }
    if let Some(retain) = patch.get("$retainKeys") {
        let keep: Vec<&str> = retain
            .as_array()
            .ok_or_else(|| bad("$retainKeys must be a list"))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        obj.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (field, order) in orders {
        let order = order
            .as_array()
            .ok_or_else(|| bad("$setElementOrder must be a list"))?;
        if let Some(list) = obj.get_mut(&field).and_then(Value::as_array_mut) {
            let strategy = list_strategy(&child_path(path, &field));
            reorder(list, order, strategy);
        }
    }
    Ok(())
}

fn without_directives(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn merge_list(
    slot: &mut Value,
    items: &[Value],
    strategy: ListStrategy,
    path: &str,
) -> Result<(), ApiError> {
    let replace_all = items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    if replace_all || !slot.is_array() {
        *slot = Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .cloned()
                .collect(),
        );
        return Ok(());
    }
    let list = slot.as_array_mut().expect("checked above");
    match strategy {
        ListStrategy::MergePrimitives => {
            for item in items {
                if !list.contains(item) {
                    list.push(item.clone());
                }
            }
        }
        ListStrategy::MergeByKey(key) => {
            for item in items {
                let id = item.get(key).ok_or_else(|| {
                    bad(format!(
                        "map: {item} does not contain declared merge key: {key}"
                    ))
                })?;
                let existing = list.iter().position(|t| t.get(key) == Some(id));
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (existing, delete) {
                    (Some(i), true) => drop(list.remove(i)),
                    (None, true) => {}
                    (Some(i), false) => merge_object(&mut list[i], item, path)?,
                    (None, false) => {
                        let mut fresh = Value::Null;
                        merge_object(&mut fresh, item, path)?;
                        list.push(fresh);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Puts the items the order names first, in its order; the rest keep their relative order.
fn reorder(list: &mut [Value], order: &[Value], strategy: Option<ListStrategy>) {
    let id = |v: &Value| match strategy {
        Some(ListStrategy::MergeByKey(key)) => v.get(key).cloned(),
        _ => Some(v.clone()),
    };
    let rank = |v: &Value| {
        let this = id(v);
        order
            .iter()
            .position(|o| id(o) == this)
            .unwrap_or(order.len())
    };
    list.sort_by_key(rank);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_removes_nulls_and_replaces_lists() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut t, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(t, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn conditions_merge_by_type_and_keep_order_directive() {
        let mut pod = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "PodScheduled", "status": "True"}
        ]}});
        let patch = json!({"status": {
            "$setElementOrder/conditions": [{"type": "PodScheduled"}, {"type": "Ready"}, {"type": "Initialized"}],
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}]
        }});
        strategic_merge(&mut pod, &patch).unwrap();
        assert_eq!(
            pod["status"]["conditions"],
            json!([
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True"},
                {"type": "Initialized", "status": "True"}
            ])
        );
    }

    #[test]
    fn container_statuses_merge_by_name_and_delete_directive() {
        let mut pod = json!({"status": {"containerStatuses": [
            {"name": "a", "ready": false, "restartCount": 0},
            {"name": "b", "ready": true}
        ]}});
        let patch = json!({"status": {"containerStatuses": [
            {"name": "a", "ready": true},
            {"name": "b", "$patch": "delete"}
        ]}});
        strategic_merge(&mut pod, &patch).unwrap();
        assert_eq!(
            pod["status"]["containerStatuses"],
            json!([{"name": "a", "ready": true, "restartCount": 0}])
        );
    }

    #[test]
    fn untagged_lists_are_replaced_and_finalizers_merged() {
        let mut node = json!({"metadata": {"finalizers": ["a"]}, "status": {"images": [{"names": ["x"]}], "addresses": [{"type": "Hostname", "address": "h"}]}});
        let patch = json!({
            "metadata": {"finalizers": ["b"]},
            "status": {"images": [{"names": ["y"]}], "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}
        });
        strategic_merge(&mut node, &patch).unwrap();
        assert_eq!(node["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(node["status"]["images"], json!([{"names": ["y"]}]));
        assert_eq!(node["status"]["addresses"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn replace_directive_on_a_map() {
        let mut obj = json!({"spec": {"a": 1, "b": 2}});
        strategic_merge(&mut obj, &json!({"spec": {"$patch": "replace", "c": 3}})).unwrap();
        assert_eq!(obj, json!({"spec": {"c": 3}}));
    }
}
