//! The pods/NAME/binding subresource, as a scheduler uses it: a Binding names the node, and the
//! server sets spec.nodeName and the PodScheduled condition (upstream's BindingREST). spec.nodeName
//! can change no other way, and a pod is bound once.

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::meta;
use crate::resources::Resource;
use crate::store::{Store, UpdateScope};

/// Binds the pod `name` to the node the Binding `body` targets; the answer is a Success status.
pub fn bind(
    store: &Store,
    pods: &'static Resource,
    namespace: &str,
    name: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    let node = body["target"]["name"].as_str().unwrap_or_default();
    let kind = body["target"]["kind"].as_str().unwrap_or_default();
    let invalid = |cause: String| ApiError::Invalid {
        kind: "Binding".into(),
        name: name.into(),
        cause,
    };
    if !kind.is_empty() && kind != "Node" {
        return Err(invalid(format!(
            "target.kind: Invalid value: {kind:?}: must be empty or 'Node'"
        )));
    }
    if node.is_empty() {
        return Err(invalid("target.name: Required value".into()));
    }
    let conflict = |cause: String| ApiError::Conflict {
        resource: "pods/binding".into(),
        name: name.into(),
        cause,
    };
    store.patch(pods, namespace, name, UpdateScope::Binding, |current| {
        if meta::at(current, "metadata.deletionTimestamp").is_some() {
            return Err(conflict(format!(
                "pod {name} is being deleted, cannot be assigned to a host"
            )));
        }
        let bound = current["spec"]["nodeName"].as_str().unwrap_or_default();
        if !bound.is_empty() {
            return Err(conflict(format!(
                "pod {name} is already assigned to node {bound:?}"
            )));
        }
        let mut next = current.clone();
        next["spec"]["nodeName"] = node.into();
        let scheduled = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": meta::now()});
        if !next["status"].is_object() {
            next["status"] = json!({});
        }
        let conditions = &mut next["status"]["conditions"];
        match conditions.as_array_mut() {
            Some(list) => {
                list.retain(|c| c["type"] != "PodScheduled");
                list.push(scheduled);
            }
            None => *conditions = json!([scheduled]),
        }
        Ok(next)
    })?;
    Ok(
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}
