//! The downward API files (upstream's downwardapi.CollectData): the pod's own metadata, and its
//! containers' requests and limits, where an unset limit reads as the node's allocatable amount.

use super::{FileProjection, Payload, file_mode};
use crate::error::SetupError;
use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, ObjectFieldSelector, Pod, ResourceFieldSelector,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

pub(crate) type ResourceList = BTreeMap<String, Quantity>;

/// Every item's file; the errors of all failing items together, like upstream's aggregate.
pub(crate) fn payload(
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
    pod: &Pod,
    allocatable: &dyn Fn() -> ResourceList,
) -> Result<Payload, SetupError> {
    let mut payload = Payload::new();
    let mut errors = Vec::new();
    for item in items {
        let data = if let Some(field) = &item.field_ref {
            field_value(pod, field)
        } else if let Some(resource) = &item.resource_field_ref {
            resource_value(pod, resource, &allocatable())
        } else {
            Ok(String::new())
        };
        match (data, file_mode(item.mode, default_mode)) {
            (Ok(data), Ok(mode)) => {
                payload.insert(
                    item.path.clone(),
                    FileProjection {
                        data: data.into_bytes(),
                        mode,
                    },
                );
            }
            (Err(e), _) | (_, Err(e)) => errors.push(e),
        }
    }
    SetupError::aggregate(errors).map_or(Ok(payload), Err)
}

/// upstream's fieldpath.ExtractFieldPathAsString, for the fields a volume may name.
fn field_value(pod: &Pod, field: &ObjectFieldSelector) -> Result<String, SetupError> {
    let path = field.field_path.as_str();
    let meta = &pod.metadata;
    let labels = || meta.labels.clone().unwrap_or_default();
    let annotations = || meta.annotations.clone().unwrap_or_default();
    if let Some((base, key)) = split_subscript(path) {
        let invalid = |why: String| {
            Err(SetupError::DownwardApi(format!(
                "invalid key subscript in {path}: {why}"
            )))
        };
        return match base {
            "metadata.annotations" => match qualified_name_error(&key.to_lowercase()) {
                Some(why) => invalid(why),
                None => Ok(annotations().remove(key).unwrap_or_default()),
            },
            "metadata.labels" => match qualified_name_error(key) {
                Some(why) => invalid(why),
                None => Ok(labels().remove(key).unwrap_or_default()),
            },
            _ => Err(SetupError::DownwardApi(format!(
                "fieldPath {path:?} does not support subscript"
            ))),
        };
    }
    match path {
        "metadata.annotations" => Ok(format_map(&annotations())),
        "metadata.labels" => Ok(format_map(&labels())),
        "metadata.name" => Ok(meta.name.clone().unwrap_or_default()),
        "metadata.namespace" => Ok(meta.namespace.clone().unwrap_or_default()),
        "metadata.uid" => Ok(meta.uid.clone().unwrap_or_default()),
        _ => Err(SetupError::DownwardApi(format!(
            "unsupported fieldPath: {path}"
        ))),
    }
}

/// `metadata.labels['app']` -> ("metadata.labels", "app").
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let (base, key) = path.strip_suffix("']")?.split_once("['")?;
    (!base.is_empty()).then_some((base, key))
}

/// `key="value"` lines, sorted by key, values quoted as Go's %q does.
fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn go_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Why `name` is not a qualified name (`[prefix/]name`), as apimachinery's IsQualifiedName.
fn qualified_name_error(name: &str) -> Option<String> {
    const NAME_FMT: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
    let (prefix, local) = match name.split_once('/') {
        Some((prefix, local)) => (Some(prefix), local),
        None => (None, name),
    };
    if let Some(prefix) = prefix {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if prefix.is_empty() {
            return Some("prefix part must be non-empty".into());
        }
        if prefix.len() > 253 || !prefix.split('.').all(label_ok) {
            return Some("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into());
        }
    }
    if local.is_empty() {
        return Some("name part must be non-empty".into());
    }
    if local.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    let ends_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    let inner_ok = local
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !inner_ok || !ends_ok(local.bytes().next()) || !ends_ok(local.bytes().last()) {
        return Some(NAME_FMT.into());
    }
    None
}

/// upstream's ExtractResourceValueByContainerNameAndNodeAllocatable.
fn resource_value(
    pod: &Pod,
    selector: &ResourceFieldSelector,
    allocatable: &ResourceList,
) -> Result<String, SetupError> {
    let name = selector.container_name.as_deref().unwrap_or_default();
    let container = find_container(pod, name)
        .ok_or_else(|| SetupError::DownwardApi(format!("container {name} not found")))?;
    let resources = container.resources.as_ref();
    let (kind, resource) = selector.resource.split_once('.').unwrap_or(("", ""));
    let amounts = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => None,
    };
    if !matches!(kind, "limits" | "requests")
        || !matches!(resource, "cpu" | "memory" | "ephemeral-storage")
    {
        return Err(SetupError::DownwardApi(format!(
            "unsupported container resource : {}",
            selector.resource
        )));
    }
    let is_cpu = resource == "cpu";
    let value_of = |q: &Quantity| {
        let parsed = if is_cpu {
            kubelet_quantity::milli_value(&q.0)
        } else {
            kubelet_quantity::value(&q.0)
        };
        let parsed = parsed.ok().and_then(|v| u64::try_from(v).ok());
        parsed.ok_or_else(|| {
            SetupError::DownwardApi(format!(
                "invalid quantity {:?} for {}",
                q.0, selector.resource
            ))
        })
    };
    let own = amounts
        .and_then(|a| a.get(resource))
        .map(value_of)
        .transpose()?;
    // MergeContainerResourceLimits: an unset or zero limit is the node's allocatable amount.
    let value = match own {
        Some(v) if v != 0 || kind == "requests" => v,
        _ if kind == "limits" => allocatable
            .get(resource)
            .map(value_of)
            .transpose()?
            .unwrap_or(0),
        _ => 0,
    };
    // The API server stores an omitted divisor as "0", which upstream reads as 1.
    let divisor = match selector.divisor.as_ref().filter(|d| !d.0.is_empty()) {
        Some(d) => value_of(d)?,
        None => 0,
    };
    let divisor = match divisor {
        0 if is_cpu => 1000,
        0 => 1,
        d => d,
    };
    Ok(value.div_ceil(divisor).to_string())
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod() -> Pod {
        let q = |s: &str| Quantity(s.into());
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("u-1".into()),
                labels: Some(BTreeMap::from([
                    ("app".into(), "web".into()),
                    ("tier".into(), "front \"end\"\n".into()),
                ])),
                annotations: Some(BTreeMap::from([("example.com/owner".into(), "me".into())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    resources: Some(ResourceRequirements {
                        limits: Some(BTreeMap::from([("memory".into(), q("128Mi"))])),
                        requests: Some(BTreeMap::from([
                            ("cpu".into(), q("250m")),
                            ("memory".into(), q("64Mi")),
                        ])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        }
    }

    fn node() -> ResourceList {
        BTreeMap::from([
            ("cpu".into(), Quantity("4".into())),
            ("memory".into(), Quantity("8Gi".into())),
            ("ephemeral-storage".into(), Quantity("100Gi".into())),
        ])
    }

    fn field(path: &str) -> Result<String, SetupError> {
        field_value(
            &pod(),
            &ObjectFieldSelector {
                api_version: None,
                field_path: path.into(),
            },
        )
    }

    fn resource(resource: &str, divisor: Option<&str>) -> Result<String, SetupError> {
        resource_value(
            &pod(),
            &ResourceFieldSelector {
                container_name: Some("app".into()),
                divisor: divisor.map(|d| Quantity(d.into())),
                resource: resource.into(),
            },
            &node(),
        )
    }

    #[test]
    fn metadata_fields() {
        assert_eq!(field("metadata.name").unwrap(), "web");
        assert_eq!(field("metadata.namespace").unwrap(), "prod");
        assert_eq!(field("metadata.uid").unwrap(), "u-1");
        assert_eq!(
            field("metadata.labels").unwrap(),
            "app=\"web\"\ntier=\"front \\\"end\\\"\\n\""
        );
        assert_eq!(
            field("metadata.annotations").unwrap(),
            "example.com/owner=\"me\""
        );
        assert_eq!(field("metadata.labels['app']").unwrap(), "web");
        assert_eq!(field("metadata.labels['missing']").unwrap(), "");
        assert_eq!(
            field("metadata.annotations['example.com/owner']").unwrap(),
            "me"
        );
    }

    #[test]
    fn bad_field_paths() {
        assert_eq!(
            field("spec.nodeName").unwrap_err().to_string(),
            "unsupported fieldPath: spec.nodeName"
        );
        assert_eq!(
            field("metadata.name['x']").unwrap_err().to_string(),
            "fieldPath \"metadata.name['x']\" does not support subscript"
        );
        assert!(
            field("metadata.labels['-bad-']")
                .unwrap_err()
                .to_string()
                .starts_with("invalid key subscript in metadata.labels['-bad-']: ")
        );
    }

    #[test]
    fn resources_with_divisors_and_node_allocatable() {
        assert_eq!(resource("requests.cpu", None).unwrap(), "1");
        assert_eq!(resource("requests.cpu", Some("1m")).unwrap(), "250");
        // The real API server stores an omitted divisor as "0": read as 1.
        assert_eq!(resource("requests.cpu", Some("0")).unwrap(), "1");
        assert_eq!(resource("limits.memory", Some("0")).unwrap(), "134217728");
        assert_eq!(resource("requests.memory", Some("1Mi")).unwrap(), "64");
        assert_eq!(resource("limits.memory", None).unwrap(), "134217728");
        assert_eq!(resource("requests.ephemeral-storage", None).unwrap(), "0");
        // No cpu or storage limit: the node's allocatable amount.
        assert_eq!(resource("limits.cpu", None).unwrap(), "4");
        assert_eq!(resource("limits.cpu", Some("100m")).unwrap(), "40");
        assert_eq!(
            resource("limits.ephemeral-storage", Some("1Gi")).unwrap(),
            "100"
        );
        assert_eq!(
            resource("limits.gpu", None).unwrap_err().to_string(),
            "unsupported container resource : limits.gpu"
        );
        let missing = resource_value(
            &pod(),
            &ResourceFieldSelector {
                container_name: Some("nope".into()),
                divisor: None,
                resource: "limits.cpu".into(),
            },
            &node(),
        );
        assert_eq!(missing.unwrap_err().to_string(), "container nope not found");
    }

    #[test]
    fn payload_collects_every_error() {
        let item = |path: &str, field_path: &str| DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: field_path.into(),
            }),
            mode: None,
            resource_field_ref: None,
        };
        let ok = payload(&[item("name", "metadata.name")], 0o644, &pod(), &node).unwrap();
        assert_eq!(ok["name"].data, b"web");
        assert_eq!(ok["name"].mode, 0o644);
        let err = payload(
            &[
                item("a", "spec.a"),
                item("n", "metadata.name"),
                item("b", "spec.b"),
            ],
            0o644,
            &pod(),
            &node,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "[unsupported fieldPath: spec.a, unsupported fieldPath: spec.b]"
        );
        let same = payload(
            &[item("a", "spec.a"), item("b", "spec.a")],
            0o644,
            &pod(),
            &node,
        )
        .unwrap_err();
        assert_eq!(same.to_string(), "unsupported fieldPath: spec.a");
    }
}
