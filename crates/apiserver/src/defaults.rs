//! The defaults the real API server fills in on create, for the fields a kubelet reads.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::resources::Resource;

fn default_field(obj: &mut Map<String, Value>, field: &str, value: Value) {
    obj.entry(field.to_string()).or_insert(value);
}

fn object_at<'a>(obj: &'a mut Value, field: &str) -> &'a mut Map<String, Value> {
    if !obj.get(field).is_some_and(Value::is_object) {
        obj[field] = json!({});
    }
    obj[field].as_object_mut().expect("was just made an object")
}

/// What the real server does to every write of a kind: a Secret's write-only stringData is
/// merged into data, base64-encoded, its keys winning.
pub fn normalize(resource: &Resource, obj: &mut Value) {
    if resource.kind != "Secret" {
        return;
    }
    let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    let data = object_at(obj, "data");
    for (key, value) in strings {
        let text = value.as_str().unwrap_or_default();
        data.insert(key, STANDARD.encode(text).into());
    }
}

pub fn apply(resource: &Resource, obj: &mut Value) {
    normalize(resource, obj);
    match resource.kind {
        "Pod" => pod(obj),
        "Namespace" => default_field(object_at(obj, "status"), "phase", "Active".into()),
        "Secret" => default_field(
            obj.as_object_mut().expect("objects are maps"),
            "type",
            "Opaque".into(),
        ),
        "Service" => {
            let spec = object_at(obj, "spec");
            default_field(spec, "type", "ClusterIP".into());
            default_field(spec, "sessionAffinity", "None".into());
        }
        "PersistentVolume" => {
            let spec = object_at(obj, "spec");
            default_field(spec, "persistentVolumeReclaimPolicy", "Retain".into());
            default_field(spec, "volumeMode", "Filesystem".into());
            default_field(object_at(obj, "status"), "phase", "Pending".into());
            add_finalizer(obj, "kubernetes.io/pv-protection");
        }
        "PersistentVolumeClaim" => {
            default_field(object_at(obj, "spec"), "volumeMode", "Filesystem".into());
            default_field(object_at(obj, "status"), "phase", "Pending".into());
            add_finalizer(obj, "kubernetes.io/pvc-protection");
        }
        "StorageClass" => {
            let class = obj.as_object_mut().expect("objects are maps");
            default_field(class, "reclaimPolicy", "Delete".into());
            default_field(class, "volumeBindingMode", "Immediate".into());
        }
        "CSIDriver" => {
            let spec = object_at(obj, "spec");
            default_field(spec, "attachRequired", true.into());
            default_field(spec, "podInfoOnMount", false.into());
            default_field(spec, "requiresRepublish", false.into());
            default_field(spec, "storageCapacity", false.into());
            default_field(spec, "fsGroupPolicy", "ReadWriteOnceWithFSType".into());
            default_field(spec, "seLinuxMount", false.into());
            default_field(spec, "volumeLifecycleModes", json!(["Persistent"]));
        }
        _ => {}
    }
}

/// What the StorageObjectInUseProtection admission plugin does on create: a finalizer that
/// only its controller removes, once no pod uses the claim (or no claim the volume).
fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let meta = object_at(obj, "metadata");
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut()
        && !list.iter().any(|f| f == finalizer)
    {
        list.push(finalizer.into());
    }
}

fn pod(obj: &mut Value) {
    let spec = object_at(obj, "spec");
    default_field(spec, "restartPolicy", "Always".into());
    default_field(spec, "dnsPolicy", "ClusterFirst".into());
    default_field(spec, "terminationGracePeriodSeconds", 30.into());
    default_field(spec, "schedulerName", "default-scheduler".into());
    default_field(spec, "securityContext", json!({}));
    default_field(spec, "enableServiceLinks", true.into());
    default_field(spec, "priority", 0.into());
    default_field(spec, "serviceAccountName", "default".into());
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            containers
                .iter_mut()
                .filter_map(Value::as_object_mut)
                .for_each(container);
        }
    }
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        volumes
            .iter_mut()
            .filter_map(Value::as_object_mut)
            .for_each(volume);
    }
    zero_divisors(spec);
    let qos = qos_class(spec);
    let status = object_at(obj, "status");
    default_field(status, "phase", "Pending".into());
    default_field(status, "qosClass", qos.into());
}

/// A container's defaults; ephemeral containers get the same ones.
pub(crate) fn container(c: &mut Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    // The tag is what follows the last ':' after the last '/', so a registry port is no tag.
    let tag = image
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .split_once(':')
        .map(|(_, t)| t);
    let pull = if image.contains('@') || tag.is_some_and(|t| t != "latest") {
        "IfNotPresent"
    } else {
        "Always"
    };
    default_field(c, "imagePullPolicy", pull.into());
    default_field(c, "terminationMessagePath", "/dev/termination-log".into());
    default_field(c, "terminationMessagePolicy", "File".into());
    default_field(c, "resources", json!({}));
}

/// The volume sources whose files get mode 0644 (420) unless the manifest says otherwise.
fn volume(v: &mut Map<String, Value>) {
    for source in ["configMap", "secret", "downwardAPI", "projected"] {
        if let Some(source) = v.get_mut(source).and_then(Value::as_object_mut) {
            default_field(source, "defaultMode", 420.into());
        }
    }
}

/// A ResourceFieldSelector's divisor is a Quantity struct in Go, which has no empty form:
/// every resourceFieldRef (env, downwardAPI and projected items) is stored with "0".
fn zero_divisors(obj: &mut Map<String, Value>) {
    for (key, value) in obj.iter_mut() {
        match value {
            Value::Object(inner) if key == "resourceFieldRef" => {
                default_field(inner, "divisor", "0".into());
            }
            Value::Object(inner) => zero_divisors(inner),
            Value::Array(items) => items
                .iter_mut()
                .filter_map(Value::as_object_mut)
                .for_each(zero_divisors),
            _ => {}
        }
    }
}

/// The pod's QoS class from its containers' requests and limits (v1 qos.GetPodQOS, for cpu
/// and memory).
fn qos_class(spec: &Map<String, Value>) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|l| spec.get(*l).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = c.pointer("/resources/requests");
        let limits = c.pointer("/resources/limits");
        for res in ["cpu", "memory"] {
            let request = requests.and_then(|r| r.get(res));
            let limit = limits.and_then(|l| l.get(res));
            any |= request.is_some() || limit.is_some();
            // A missing request defaults to the limit, so only a differing request breaks it.
            guaranteed &= limit.is_some() && request.is_none_or(|r| Some(r) == limit);
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_field_divisors_are_zero_and_volume_modes_0644() {
        let pods = crate::resources::find("", "v1", "pods").unwrap();
        let field = json!({"resourceFieldRef": {"resource": "limits.cpu"}});
        let mut obj = json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "c", "image": "i:1",
                    "env": [{"name": "CPU", "valueFrom": field.clone()}]}],
                "volumes": [
                    {"name": "d", "downwardAPI": {"items": [
                        {"path": "cpu", "resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}},
                        {"path": "mem", "resourceFieldRef": {"resource": "limits.memory"}}
                    ]}},
                    {"name": "p", "projected": {"sources": [{"downwardAPI": {"items": [
                        {"path": "cpu", "resourceFieldRef": {"resource": "limits.cpu"}}
                    ]}}]}},
                    {"name": "s", "secret": {"secretName": "s", "defaultMode": 256}}
                ]
            }
        });
        apply(pods, &mut obj);
        let spec = &obj["spec"];
        assert_eq!(
            spec["containers"][0]["env"][0]["valueFrom"]["resourceFieldRef"]["divisor"],
            "0"
        );
        let items = &spec["volumes"][0]["downwardAPI"]["items"];
        assert_eq!(items[0]["resourceFieldRef"]["divisor"], "1m");
        assert_eq!(items[1]["resourceFieldRef"]["divisor"], "0");
        assert_eq!(spec["volumes"][0]["downwardAPI"]["defaultMode"], 420);
        let projected = &spec["volumes"][1]["projected"];
        assert_eq!(
            projected["sources"][0]["downwardAPI"]["items"][0]["resourceFieldRef"]["divisor"],
            "0"
        );
        assert_eq!(projected["defaultMode"], 420);
        assert_eq!(spec["volumes"][2]["secret"]["defaultMode"], 256);
    }

    #[test]
    fn secret_string_data_is_folded_into_data() {
        let secret = crate::resources::find("", "v1", "secrets").unwrap();
        let mut obj = json!({
            "metadata": {"name": "s"},
            "data": {"a": "b2xk", "keep": "eA=="},
            "stringData": {"a": "new", "b": "hunter2"}
        });
        apply(secret, &mut obj);
        assert_eq!(
            obj["data"],
            json!({"a": "bmV3", "b": "aHVudGVyMg==", "keep": "eA=="})
        );
        assert!(obj.get("stringData").is_none());
        assert_eq!(obj["type"], "Opaque");
    }
}
