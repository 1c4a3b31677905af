//! `json.Marshal` of a Go `v1.Container` (k8s.io/api core/v1, v1.28-v1.30), byte for byte: the
//! fields in Go's declaration order, `omitempty` as Go applies it (empty strings, zero numbers,
//! false, nil or empty slices and maps; never a non-pointer struct), pointers written even
//! when they hold a zero value, quantities in canonical form and Go's string escaping.
//!
//! The container's serde form supplies the values; the tables below supply what serde cannot
//! know: Go's order, which fields are pointers, and which have no `omitempty`. Fields newer than
//! v1.30 are not in the tables, so they are left out as those kubelets, not knowing them, did.

use crate::labels::go_json::write_string;
use k8s_openapi::api::core::v1::Container;
use serde_json::{Map, Value};
use std::fmt::Write;

/// How Go writes one field.
#[derive(Clone, Copy)]
enum Kind {
    /// `string` without omitempty: always written.
    Str,
    /// `string` with omitempty.
    StrOmit,
    /// `*string` with omitempty: written when set, even empty.
    PtrStr,
    /// `*string` without omitempty: `null` when unset.
    PtrStrOrNull,
    /// `int32` without omitempty.
    Int,
    /// `int32`/`int64` with omitempty.
    IntOmit,
    /// `*int32`/`*int64` with omitempty.
    PtrInt,
    /// `bool` with omitempty.
    BoolOmit,
    /// `*bool` with omitempty.
    PtrBool,
    /// `[]string` with omitempty.
    Strings,
    /// A non-pointer struct: written even when empty.
    Struct(&'static [Field]),
    /// A pointer to a struct, with omitempty.
    PtrStruct(&'static [Field]),
    /// A slice of structs, with omitempty.
    Structs(&'static [Field]),
    /// An embedded struct: its fields are the parent's.
    Inline(&'static [Field]),
    /// `ResourceList` (map of quantities, keys sorted), with omitempty.
    ResourceList,
    /// `resource.Quantity` (a struct: always written, "0" when unset).
    Quantity,
    /// `intstr.IntOrString` (a struct: always written, 0 when unset).
    IntOrString,
}

type Field = (&'static str, Kind);

use Kind::*;

const CONTAINER: &[Field] = &[
    ("name", Str),
    ("image", StrOmit),
    ("command", Strings),
    ("args", Strings),
    ("workingDir", StrOmit),
    ("ports", Structs(CONTAINER_PORT)),
    ("envFrom", Structs(ENV_FROM_SOURCE)),
    ("env", Structs(ENV_VAR)),
    ("resources", Struct(RESOURCE_REQUIREMENTS)),
    ("resizePolicy", Structs(CONTAINER_RESIZE_POLICY)),
    ("restartPolicy", PtrStr),
    ("volumeMounts", Structs(VOLUME_MOUNT)),
    ("volumeDevices", Structs(VOLUME_DEVICE)),
    ("livenessProbe", PtrStruct(PROBE)),
    ("readinessProbe", PtrStruct(PROBE)),
    ("startupProbe", PtrStruct(PROBE)),
    ("lifecycle", PtrStruct(LIFECYCLE)),
    ("terminationMessagePath", StrOmit),
    ("terminationMessagePolicy", StrOmit),
    ("imagePullPolicy", StrOmit),
    ("securityContext", PtrStruct(SECURITY_CONTEXT)),
    ("stdin", BoolOmit),
    ("stdinOnce", BoolOmit),
    ("tty", BoolOmit),
];
const CONTAINER_PORT: &[Field] = &[
    ("name", StrOmit),
    ("hostPort", IntOmit),
    ("containerPort", Int),
    ("protocol", StrOmit),
    ("hostIP", StrOmit),
];
const ENV_FROM_SOURCE: &[Field] = &[
    ("prefix", StrOmit),
    ("configMapRef", PtrStruct(OPTIONAL_REFERENCE)),
    ("secretRef", PtrStruct(OPTIONAL_REFERENCE)),
];
/// ConfigMapEnvSource and SecretEnvSource: an embedded LocalObjectReference and `optional`.
const OPTIONAL_REFERENCE: &[Field] = &[("name", StrOmit), ("optional", PtrBool)];
const ENV_VAR: &[Field] = &[
    ("name", Str),
    ("value", StrOmit),
    ("valueFrom", PtrStruct(ENV_VAR_SOURCE)),
];
const ENV_VAR_SOURCE: &[Field] = &[
    ("fieldRef", PtrStruct(OBJECT_FIELD_SELECTOR)),
    ("resourceFieldRef", PtrStruct(RESOURCE_FIELD_SELECTOR)),
    ("configMapKeyRef", PtrStruct(KEY_SELECTOR)),
    ("secretKeyRef", PtrStruct(KEY_SELECTOR)),
];
const OBJECT_FIELD_SELECTOR: &[Field] = &[("apiVersion", StrOmit), ("fieldPath", Str)];
const RESOURCE_FIELD_SELECTOR: &[Field] = &[
    ("containerName", StrOmit),
    ("resource", Str),
    ("divisor", Quantity),
];
/// ConfigMapKeySelector and SecretKeySelector.
const KEY_SELECTOR: &[Field] = &[("name", StrOmit), ("key", Str), ("optional", PtrBool)];
const RESOURCE_REQUIREMENTS: &[Field] = &[
    ("limits", ResourceList),
    ("requests", ResourceList),
    ("claims", Structs(RESOURCE_CLAIM)),
];
const RESOURCE_CLAIM: &[Field] = &[("name", Str)];
const CONTAINER_RESIZE_POLICY: &[Field] = &[("resourceName", Str), ("restartPolicy", Str)];
const VOLUME_MOUNT: &[Field] = &[
    ("name", Str),
    ("readOnly", BoolOmit),
    ("recursiveReadOnly", PtrStr),
    ("mountPath", Str),
    ("subPath", StrOmit),
    ("mountPropagation", PtrStr),
    ("subPathExpr", StrOmit),
];
const VOLUME_DEVICE: &[Field] = &[("name", Str), ("devicePath", Str)];
const PROBE: &[Field] = &[
    ("", Inline(PROBE_HANDLER)),
    ("initialDelaySeconds", IntOmit),
    ("timeoutSeconds", IntOmit),
    ("periodSeconds", IntOmit),
    ("successThreshold", IntOmit),
    ("failureThreshold", IntOmit),
    ("terminationGracePeriodSeconds", PtrInt),
];
const PROBE_HANDLER: &[Field] = &[
    ("exec", PtrStruct(EXEC_ACTION)),
    ("httpGet", PtrStruct(HTTP_GET_ACTION)),
    ("tcpSocket", PtrStruct(TCP_SOCKET_ACTION)),
    ("grpc", PtrStruct(GRPC_ACTION)),
];
const EXEC_ACTION: &[Field] = &[("command", Strings)];
const HTTP_GET_ACTION: &[Field] = &[
    ("path", StrOmit),
    ("port", IntOrString),
    ("host", StrOmit),
    ("scheme", StrOmit),
    ("httpHeaders", Structs(HTTP_HEADER)),
];
const HTTP_HEADER: &[Field] = &[("name", Str), ("value", Str)];
const TCP_SOCKET_ACTION: &[Field] = &[("port", IntOrString), ("host", StrOmit)];
const GRPC_ACTION: &[Field] = &[("port", Int), ("service", PtrStrOrNull)];
const LIFECYCLE: &[Field] = &[
    ("postStart", PtrStruct(LIFECYCLE_HANDLER)),
    ("preStop", PtrStruct(LIFECYCLE_HANDLER)),
];
const LIFECYCLE_HANDLER: &[Field] = &[
    ("exec", PtrStruct(EXEC_ACTION)),
    ("httpGet", PtrStruct(HTTP_GET_ACTION)),
    ("tcpSocket", PtrStruct(TCP_SOCKET_ACTION)),
    ("sleep", PtrStruct(SLEEP_ACTION)),
];
const SLEEP_ACTION: &[Field] = &[("seconds", Int)];
const SECURITY_CONTEXT: &[Field] = &[
    ("capabilities", PtrStruct(CAPABILITIES)),
    ("privileged", PtrBool),
    ("seLinuxOptions", PtrStruct(SE_LINUX_OPTIONS)),
    ("windowsOptions", PtrStruct(WINDOWS_OPTIONS)),
    ("runAsUser", PtrInt),
    ("runAsGroup", PtrInt),
    ("runAsNonRoot", PtrBool),
    ("readOnlyRootFilesystem", PtrBool),
    ("allowPrivilegeEscalation", PtrBool),
    ("procMount", PtrStr),
    ("seccompProfile", PtrStruct(PROFILE)),
    ("appArmorProfile", PtrStruct(PROFILE)),
];
const CAPABILITIES: &[Field] = &[("add", Strings), ("drop", Strings)];
const SE_LINUX_OPTIONS: &[Field] = &[
    ("user", StrOmit),
    ("role", StrOmit),
    ("type", StrOmit),
    ("level", StrOmit),
];
const WINDOWS_OPTIONS: &[Field] = &[
    ("gmsaCredentialSpecName", PtrStr),
    ("gmsaCredentialSpec", PtrStr),
    ("runAsUserName", PtrStr),
    ("hostProcess", PtrBool),
];
/// SeccompProfile and AppArmorProfile.
const PROFILE: &[Field] = &[("type", Str), ("localhostProfile", PtrStr)];

/// The container as `json.Marshal` writes it; `None` when its serde form is not an object.
pub(crate) fn container_json(container: &Container) -> Option<String> {
    let Ok(Value::Object(fields)) = serde_json::to_value(container) else {
        return None;
    };
    let mut out = String::new();
    write_struct(&mut out, &fields, CONTAINER);
    Some(out)
}

fn write_struct(out: &mut String, fields: &Map<String, Value>, schema: &[Field]) {
    out.push('{');
    let mut first = true;
    write_members(out, &mut first, fields, schema);
    out.push('}');
}

fn write_members(
    out: &mut String,
    first: &mut bool,
    fields: &Map<String, Value>,
    schema: &[Field],
) {
    for (name, kind) in schema {
        let value = fields.get(*name).filter(|v| !v.is_null());
        if let Inline(inner) = kind {
            write_members(out, first, fields, inner);
            continue;
        }
        if omitted(*kind, value) {
            continue;
        }
        if !std::mem::take(first) {
            out.push(',');
        }
        write_string(out, name);
        out.push(':');
        write_value(out, *kind, value);
    }
}

fn omitted(kind: Kind, value: Option<&Value>) -> bool {
    let Some(value) = value else {
        return !matches!(
            kind,
            Str | PtrStrOrNull | Int | Struct(_) | Quantity | IntOrString
        );
    };
    match kind {
        StrOmit => value.as_str().is_none_or(str::is_empty),
        IntOmit => value.as_i64().is_none_or(|n| n == 0),
        BoolOmit => value.as_bool() != Some(true),
        Strings | Structs(_) => value.as_array().is_none_or(Vec::is_empty),
        ResourceList => value.as_object().is_none_or(Map::is_empty),
        _ => false,
    }
}

fn write_value(out: &mut String, kind: Kind, value: Option<&Value>) {
    match kind {
        Str | StrOmit | PtrStr => {
            write_string(out, value.and_then(Value::as_str).unwrap_or_default());
        }
        PtrStrOrNull => match value.and_then(Value::as_str) {
            Some(s) => write_string(out, s),
            None => out.push_str("null"),
        },
        Int | IntOmit | PtrInt => {
            let _ = write!(out, "{}", value.and_then(Value::as_i64).unwrap_or(0));
        }
        BoolOmit | PtrBool => {
            let _ = write!(out, "{}", value.and_then(Value::as_bool).unwrap_or(false));
        }
        Strings => {
            out.push('[');
            for (i, s) in array(value).iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, s.as_str().unwrap_or_default());
            }
            out.push(']');
        }
        Struct(schema) | PtrStruct(schema) | Inline(schema) => {
            let empty = Map::new();
            write_struct(
                out,
                value.and_then(Value::as_object).unwrap_or(&empty),
                schema,
            );
        }
        Structs(schema) => {
            out.push('[');
            let empty = Map::new();
            for (i, item) in array(value).iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_struct(out, item.as_object().unwrap_or(&empty), schema);
            }
            out.push(']');
        }
        ResourceList => {
            // Go writes map keys sorted; serde_json's map is sorted too, but say so.
            let mut entries: Vec<_> = value
                .and_then(Value::as_object)
                .map(|m| m.iter().collect())
                .unwrap_or_default();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (name, quantity)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, name);
                out.push(':');
                write_quantity(out, Some(quantity));
            }
            out.push('}');
        }
        Quantity => write_quantity(out, value),
        IntOrString => match value {
            Some(Value::String(s)) => write_string(out, s),
            Some(v) => {
                let _ = write!(out, "{}", v.as_i64().unwrap_or(0));
            }
            None => out.push('0'),
        },
    }
}

fn array(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// A quantity as `Quantity.MarshalJSON` writes it; text that does not parse is kept as it is
/// (Go would have refused the pod).
fn write_quantity(out: &mut String, value: Option<&Value>) {
    let text = value.and_then(Value::as_str).unwrap_or("0");
    let canonical = kubelet_quantity::canonical_string(text).unwrap_or_else(|_| text.to_owned());
    write_string(out, &canonical);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(value: serde_json::Value) -> String {
        container_json(&serde_json::from_value(value).unwrap()).unwrap()
    }

    #[test]
    fn go_order_omitempty_and_structs() {
        let json = json_of(serde_json::json!({
            "tty": false,
            "stdin": true,
            "image": "i",
            "name": "n",
            "args": [],
            "ports": [{"containerPort": 80, "protocol": "TCP", "hostPort": 0}],
            "env": [{"name": "A", "value": ""}, {"name": "B", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}}],
        }));
        assert_eq!(
            json,
            r#"{"name":"n","image":"i","ports":[{"containerPort":80,"protocol":"TCP"}],"env":[{"name":"A"},{"name":"B","valueFrom":{"resourceFieldRef":{"resource":"limits.memory","divisor":"0"}}}],"resources":{},"stdin":true}"#
        );
    }

    #[test]
    fn pointers_keep_zero_values_and_quantities_are_canonical() {
        let json = json_of(serde_json::json!({
            "name": "n",
            "resources": {"requests": {"memory": "33554432", "cpu": "0.5"}},
            "securityContext": {"runAsUser": 0, "privileged": false},
            "readinessProbe": {"grpc": {"port": 9}, "periodSeconds": 0},
            "livenessProbe": {"httpGet": {"port": "http"}, "timeoutSeconds": 1},
        }));
        assert_eq!(
            json,
            r#"{"name":"n","resources":{"requests":{"cpu":"500m","memory":"33554432"}},"livenessProbe":{"httpGet":{"port":"http"},"timeoutSeconds":1},"readinessProbe":{"grpc":{"port":9,"service":null}},"securityContext":{"privileged":false,"runAsUser":0}}"#
        );
    }
}
