//! The pods/NAME/ephemeralcontainers subresource, as the real server's ephemeral containers
//! strategy has it: an update takes only spec.ephemeralContainers from the request (every other
//! change is dropped), defaults them as containers, and refuses one that removes or changes an
//! existing ephemeral container or adds an invalid one (upstream
//! ValidatePodEphemeralContainersUpdate and validateEphemeralContainers).

use serde_json::Value;

use crate::error::ApiError;
use crate::meta;

const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Fields an ephemeral container may not set (upstream allowedEphemeralContainerFields is the
/// complement).
const FORBIDDEN_FIELDS: [&str; 7] = [
    "ports",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "resources",
    "resizePolicy",
];

/// The pod `current` becomes when `given` is written to its ephemeralcontainers subresource.
pub fn update(current: &Value, given: &Value) -> Result<Value, ApiError> {
    let name = meta::name(current).to_string();
    let invalid = |causes: Vec<String>| ApiError::Invalid {
        kind: "Pod".into(),
        name: name.clone(),
        cause: match causes.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        },
    };
    let mut next = current.clone();
    let mut added: Vec<Value> = given["spec"]["ephemeralContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in added.iter_mut().filter_map(Value::as_object_mut) {
        crate::defaults::container(c);
    }
    if meta::at(current, "metadata.annotations")
        .and_then(|a| a.get(MIRROR_POD_ANNOTATION))
        .is_some()
    {
        return Err(invalid(vec![
            ": Forbidden: static pods do not support ephemeral containers".into(),
        ]));
    }
    let old = current["spec"]["ephemeralContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut causes = validate(&current["spec"], &added);
    for o in &old {
        let o_name = o["name"].as_str().unwrap_or_default();
        match added.iter().find(|n| n["name"] == o["name"]) {
            None => causes.push(format!(
                "spec.ephemeralContainers: Forbidden: existing ephemeral containers {o_name:?} may not be removed\n"
            )),
            Some(n) if n != o => causes.push(format!(
                "spec.ephemeralContainers: Forbidden: existing ephemeral containers {o_name:?} may not be changed\n"
            )),
            Some(_) => {}
        }
    }
    if !causes.is_empty() {
        return Err(invalid(causes));
    }
    if added.is_empty() {
        drop(
            next["spec"]
                .as_object_mut()
                .map(|s| s.remove("ephemeralContainers")),
        );
    } else {
        next["spec"]["ephemeralContainers"] = Value::Array(added);
    }
    Ok(next)
}

/// The causes an invalid list of ephemeral containers is refused with.
fn validate(spec: &Value, ephemeral: &[Value]) -> Vec<String> {
    let names_of = |list: &str| -> Vec<String> {
        spec[list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    let (apps, inits) = (names_of("containers"), names_of("initContainers"));
    let mut seen: Vec<String> = apps.iter().chain(&inits).cloned().collect();
    let mut causes = Vec::new();
    for (i, c) in ephemeral.iter().enumerate() {
        let path = format!("spec.ephemeralContainers[{i}]");
        let name = c["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            causes.push(format!("{path}.name: Required value"));
        } else if seen.iter().any(|s| s == name) {
            causes.push(format!("{path}.name: Duplicate value: {name:?}"));
        } else {
            seen.push(name.to_string());
        }
        if c["image"].as_str().unwrap_or_default().is_empty() {
            causes.push(format!("{path}.image: Required value"));
        }
        for field in FORBIDDEN_FIELDS {
            if c.get(field).is_some_and(|v| !is_empty(v)) {
                causes.push(format!(
                    "{path}.{field}: Forbidden: cannot be set for an Ephemeral Container"
                ));
            }
        }
        if let Some(target) = c["targetContainerName"].as_str().filter(|t| !t.is_empty())
            && !apps.iter().chain(&inits).any(|n| n == target)
        {
            causes.push(format!("{path}.targetContainerName: Not found: {target:?}"));
        }
    }
    causes
}

/// The defaulted `resources: {}` counts as unset.
fn is_empty(v: &Value) -> bool {
    v.is_null() || v.as_object().is_some_and(|o| o.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ephemeral: Value) -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}],
                     "ephemeralContainers": ephemeral},
            "status": {"phase": "Running"}
        })
    }

    fn debugger(name: &str) -> Value {
        json!({"name": name, "image": "busybox:1.35", "targetContainerName": "app"})
    }

    fn cause(e: ApiError) -> String {
        match e {
            ApiError::Invalid { cause, .. } => cause,
            other => panic!("not Invalid: {other:?}"),
        }
    }

    #[test]
    fn adds_defaulted_ephemeral_containers_and_nothing_else() {
        let current = pod(json!([]));
        let mut given = pod(json!([debugger("dbg")]));
        given["spec"]["containers"][0]["image"] = "other".into();
        given["status"]["phase"] = "Failed".into();
        let next = update(&current, &given).unwrap();
        assert_eq!(next["spec"]["containers"], current["spec"]["containers"]);
        assert_eq!(next["status"], current["status"]);
        let added = &next["spec"]["ephemeralContainers"][0];
        assert_eq!(added["imagePullPolicy"], "IfNotPresent");
        assert_eq!(added["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(added["terminationMessagePolicy"], "File");
    }

    #[test]
    fn existing_ones_may_be_neither_removed_nor_changed() {
        let current = update(&pod(json!([])), &pod(json!([debugger("dbg")]))).unwrap();
        assert_eq!(
            cause(update(&current, &pod(json!([]))).unwrap_err()),
            "spec.ephemeralContainers: Forbidden: existing ephemeral containers \"dbg\" may not be removed\n"
        );
        let mut changed = debugger("dbg");
        changed["image"] = "busybox:1.36".into();
        assert_eq!(
            cause(update(&current, &pod(json!([changed]))).unwrap_err()),
            "spec.ephemeralContainers: Forbidden: existing ephemeral containers \"dbg\" may not be changed\n"
        );
    }

    #[test]
    fn new_ones_are_validated() {
        let mut bad = debugger("app");
        bad["targetContainerName"] = "ghost".into();
        bad["ports"] = json!([{"containerPort": 80}]);
        assert_eq!(
            cause(update(&pod(json!([])), &pod(json!([bad]))).unwrap_err()),
            "[spec.ephemeralContainers[0].name: Duplicate value: \"app\", \
             spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container, \
             spec.ephemeralContainers[0].targetContainerName: Not found: \"ghost\"]"
        );
    }

    #[test]
    fn static_pods_take_none() {
        let mut mirror = pod(json!([]));
        mirror["metadata"]["annotations"] = json!({MIRROR_POD_ANNOTATION: "x"});
        assert_eq!(
            cause(update(&mirror, &pod(json!([debugger("dbg")]))).unwrap_err()),
            ": Forbidden: static pods do not support ephemeral containers"
        );
    }
}
