//! Turning manifest bytes (YAML or JSON) into defaulted, validated pods (upstream config/common.go
//! tryDecodeSinglePod and tryDecodePodList).

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use crate::static_pod::Origin;
use crate::validation::{FieldError, FieldErrors, validate_pod};
use crate::{AdoptedUids, api_defaults, static_pod};

/// Why a manifest gave no pod. Each names the file or URL, and the field at fault when known.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{location}: not a YAML or JSON object: {cause}")]
    Syntax { location: String, cause: String },
    #[error("{location}: {field}: {cause}")]
    Field {
        location: String,
        field: String,
        cause: String,
    },
    #[error("{location}: invalid pod: {errors}")]
    Invalid {
        location: String,
        errors: FieldErrors,
    },
}

/// Decodes a manifest that must hold one Pod (a file of the manifest directory).
pub fn decode_pod(data: &[u8], origin: &Origin, node_name: &str) -> Result<Pod, ManifestError> {
    decode_pod_adopting(data, origin, node_name, &AdoptedUids::default())
}

/// [`decode_pod`], a pod without a UID taking the one `adopted` holds for it.
pub(crate) fn decode_pod_adopting(
    data: &[u8],
    origin: &Origin,
    node_name: &str,
    adopted: &AdoptedUids,
) -> Result<Pod, ManifestError> {
    let value = parse_object(data, origin)?;
    check_type(&value, &["Pod"], origin)?;
    finish(value, origin, node_name, adopted, "")
}

/// Decodes a manifest holding a Pod or a PodList (the manifest URL). Like upstream, one bad pod
/// rejects the whole list: the caller keeps the previous state rather than run half of it.
pub fn decode_pods(
    data: &[u8],
    origin: &Origin,
    node_name: &str,
) -> Result<Vec<Pod>, ManifestError> {
    decode_pods_adopting(data, origin, node_name, &AdoptedUids::default())
}

/// [`decode_pods`], pods without a UID taking the one `adopted` holds for them.
pub(crate) fn decode_pods_adopting(
    data: &[u8],
    origin: &Origin,
    node_name: &str,
    adopted: &AdoptedUids,
) -> Result<Vec<Pod>, ManifestError> {
    let mut value = parse_object(data, origin)?;
    if check_type(&value, &["Pod", "PodList"], origin)? == "Pod" {
        return Ok(vec![finish(value, origin, node_name, adopted, "")?]);
    }
    let items = match value.get_mut("items").map(Value::take) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(field_error(
                origin,
                "items",
                format!("expected a list, found {other}"),
            ));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| finish(item, origin, node_name, adopted, &format!("items[{i}].")))
        .collect()
}

fn parse_object(data: &[u8], origin: &Origin) -> Result<Value, ManifestError> {
    let syntax = |cause: String| ManifestError::Syntax {
        location: origin.location.clone(),
        cause,
    };
    // JSON is YAML, but serde_json reports JSON mistakes more precisely and accepts tabs.
    let looks_like_json = data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let value: Value = if looks_like_json {
        serde_json::from_slice(data).map_err(|e| syntax(e.to_string()))?
    } else {
        serde_yaml_ng::from_slice(data).map_err(|e| syntax(e.to_string()))?
    };
    match value {
        Value::Object(_) => Ok(value),
        Value::Null => Err(syntax("empty document".to_owned())),
        other => Err(syntax(format!("expected an object, found {other}"))),
    }
}

/// Checks apiVersion and kind as upstream's decoder does; returns the kind.
fn check_type<'v>(
    value: &'v Value,
    kinds: &[&str],
    origin: &Origin,
) -> Result<&'v str, ManifestError> {
    let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or("");
    let kind = text("kind");
    if kind.is_empty() {
        return Err(field_error(origin, "kind", "Required value".to_owned()));
    }
    if !kinds.contains(&kind) {
        let supported: Vec<String> = kinds.iter().map(|k| format!("{k:?}")).collect();
        return Err(field_error(
            origin,
            "kind",
            format!(
                "Unsupported value: {kind:?}: supported values: {}",
                supported.join(", ")
            ),
        ));
    }
    match text("apiVersion") {
        "v1" => Ok(kind),
        "" => Err(field_error(
            origin,
            "apiVersion",
            "Required value".to_owned(),
        )),
        other => Err(field_error(
            origin,
            "apiVersion",
            format!("Unsupported value: {other:?}: supported values: \"v1\""),
        )),
    }
}

/// Typed decoding, defaulting and validation of one pod object. `prefix` locates a list item.
fn finish(
    value: Value,
    origin: &Origin,
    node_name: &str,
    adopted: &AdoptedUids,
    prefix: &str,
) -> Result<Pod, ManifestError> {
    let mut pod: Pod = serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        field_error(
            origin,
            &format!("{prefix}{field}"),
            e.into_inner().to_string(),
        )
    })?;
    // The generated name would hide a missing one, so check it before defaulting.
    if pod.metadata.name.as_deref().unwrap_or("").is_empty() {
        return Err(field_error(
            origin,
            &format!("{prefix}metadata.name"),
            "Required value".to_owned(),
        ));
    }
    api_defaults::apply(&mut pod);
    static_pod::apply(&mut pod, origin, node_name, adopted);
    validate_pod(&pod).map_err(|FieldErrors(errors)| ManifestError::Invalid {
        location: origin.location.clone(),
        errors: FieldErrors(
            errors
                .into_iter()
                .map(|e| FieldError {
                    path: format!("{prefix}{}", e.path),
                    kind: e.kind,
                })
                .collect(),
        ),
    })?;
    Ok(pod)
}

fn field_error(origin: &Origin, field: &str, cause: String) -> ManifestError {
    ManifestError::Field {
        location: origin.location.clone(),
        field: field.to_owned(),
        cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn file_origin() -> Origin {
        Origin::file(Path::new("/m/web.yaml"))
    }

    fn error_text(data: &str) -> String {
        decode_pod(data.as_bytes(), &file_origin(), "node1")
            .unwrap_err()
            .to_string()
    }

    const YAML_POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: web
    image: nginx:1.25
";

    #[test]
    fn yaml_and_json_give_the_same_pod() {
        let json = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}"#;
        let from_yaml = decode_pod(YAML_POD.as_bytes(), &file_origin(), "node1").unwrap();
        let from_json = decode_pod(json.as_bytes(), &file_origin(), "node1").unwrap();
        assert_eq!(from_yaml, from_json);
        assert_eq!(from_yaml.metadata.name.as_deref(), Some("web-node1"));
        let container = &from_yaml.spec.as_ref().unwrap().containers[0];
        assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"));
    }

    #[test]
    fn syntax_errors_name_the_file() {
        let text = error_text("apiVersion: v1\nkind: Pod\nmetadata: [unclosed\n");
        assert!(
            text.starts_with("/m/web.yaml: not a YAML or JSON object:"),
            "{text}"
        );
        let text = error_text("{\"kind\": ");
        assert!(
            text.starts_with("/m/web.yaml: not a YAML or JSON object:"),
            "{text}"
        );
        assert_eq!(
            error_text(""),
            "/m/web.yaml: not a YAML or JSON object: empty document"
        );
        assert!(error_text("- a\n- b\n").contains("expected an object"));
    }

    #[test]
    fn type_errors() {
        assert_eq!(
            error_text("apiVersion: v1\nmetadata: {name: a}\n"),
            "/m/web.yaml: kind: Required value"
        );
        assert_eq!(
            error_text("apiVersion: apps/v1\nkind: Deployment\n"),
            "/m/web.yaml: kind: Unsupported value: \"Deployment\": supported values: \"Pod\""
        );
        assert_eq!(
            error_text("apiVersion: v1\nkind: PodList\nitems: []\n"),
            "/m/web.yaml: kind: Unsupported value: \"PodList\": supported values: \"Pod\""
        );
        assert_eq!(
            error_text("kind: Pod\n"),
            "/m/web.yaml: apiVersion: Required value"
        );
        assert_eq!(
            error_text("kind: Pod\napiVersion: v2\n"),
            "/m/web.yaml: apiVersion: Unsupported value: \"v2\": supported values: \"v1\""
        );
    }

    #[test]
    fn decoding_errors_name_the_field() {
        let text = error_text(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: a\n    image: x\n    ports:\n    - containerPort: eighty\n",
        );
        assert!(
            text.starts_with(
                "/m/web.yaml: spec.containers[0].ports[0].containerPort: invalid type"
            ),
            "{text}"
        );
    }

    #[test]
    fn missing_name_is_reported_before_defaulting() {
        assert_eq!(
            error_text("apiVersion: v1\nkind: Pod\nspec:\n  containers: [{name: a, image: x}]\n"),
            "/m/web.yaml: metadata.name: Required value"
        );
    }

    #[test]
    fn validation_errors_name_the_file_and_field() {
        let text = error_text(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: a, image: x}\n  - {name: b}\n",
        );
        assert_eq!(
            text,
            "/m/web.yaml: invalid pod: spec.containers[1].image: Required value"
        );
    }

    #[test]
    fn pod_or_pod_list_from_a_url() {
        let origin = Origin::url("http://127.0.0.1/pods");
        let single = decode_pods(YAML_POD.as_bytes(), &origin, "n").unwrap();
        assert_eq!(single.len(), 1);
        let list = r#"{"apiVersion": "v1", "kind": "PodList", "items": [
            {"metadata": {"name": "a"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
            {"metadata": {"name": "b"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}]}"#;
        let pods = decode_pods(list.as_bytes(), &origin, "n").unwrap();
        let names: Vec<_> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["a-n", "b-n"]);
        let empty = decode_pods(
            b"{\"apiVersion\": \"v1\", \"kind\": \"PodList\"}",
            &origin,
            "n",
        )
        .unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn one_bad_list_item_rejects_the_list_and_is_located() {
        let origin = Origin::url("http://127.0.0.1/pods");
        let list = r#"{"apiVersion": "v1", "kind": "PodList", "items": [
            {"metadata": {"name": "a"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
            {"metadata": {"name": "b"}, "spec": {"containers": [{"name": "c"}]}}]}"#;
        let text = decode_pods(list.as_bytes(), &origin, "n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            text,
            "http://127.0.0.1/pods: invalid pod: items[1].spec.containers[0].image: Required value"
        );
        let bad_items = br#"{"apiVersion": "v1", "kind": "PodList", "items": 3}"#;
        let text = decode_pods(bad_items, &origin, "n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            text,
            "http://127.0.0.1/pods: items: expected a list, found 3"
        );
    }
}
