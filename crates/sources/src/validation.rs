//! A useful subset of the API server's pod validation (upstream ValidatePodCreate), run on a
//! static pod after defaulting. Errors name the field path and read like upstream's.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use kubelet_quantity::Quantity;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const INIT_CONTAINER_RESTART_POLICIES: &[&str] = &["Always"];

/// One invalid field, displayed as upstream's field.Error is: `path: Kind: detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub kind: FieldErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    /// The value as upstream prints it (strings quoted) and why it is wrong.
    Invalid {
        value: String,
        detail: String,
    },
    Duplicate(String),
    NotFound(String),
    NotSupported {
        value: String,
        supported: &'static [&'static str],
    },
    Forbidden(&'static str),
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = &self.path;
        match &self.kind {
            FieldErrorKind::Required => write!(f, "{path}: Required value"),
            FieldErrorKind::Invalid { value, detail } => {
                write!(f, "{path}: Invalid value: {value}: {detail}")
            }
            FieldErrorKind::Duplicate(value) => write!(f, "{path}: Duplicate value: {value:?}"),
            FieldErrorKind::NotFound(value) => write!(f, "{path}: Not found: {value:?}"),
            FieldErrorKind::NotSupported { value, supported } => {
                let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
                write!(
                    f,
                    "{path}: Unsupported value: {value:?}: supported values: {}",
                    list.join(", ")
                )
            }
            FieldErrorKind::Forbidden(detail) => write!(f, "{path}: Forbidden: {detail}"),
        }
    }
}

/// All the invalid fields of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

/// Validates a defaulted pod; `Ok` when no rule is broken.
pub fn validate_pod(pod: &Pod) -> Result<(), FieldErrors> {
    let mut errors = Errors::default();
    let name = pod.metadata.name.as_deref().unwrap_or("");
    if name.is_empty() {
        errors.push("metadata.name", FieldErrorKind::Required);
    } else if let Some(detail) = dns1123_subdomain_problem(name) {
        errors.invalid("metadata.name", name, detail);
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
    if let Some(detail) = dns1123_label_problem(namespace) {
        errors.invalid("metadata.namespace", namespace, detail);
    }
    match &pod.spec {
        Some(spec) => validate_spec(spec, &mut errors),
        None => errors.push("spec", FieldErrorKind::Required),
    }
    if errors.0.is_empty() {
        Ok(())
    } else {
        Err(FieldErrors(errors.0))
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, kind: FieldErrorKind) {
        self.0.push(FieldError {
            path: path.into(),
            kind,
        });
    }

    fn invalid(&mut self, path: impl Into<String>, value: &str, detail: impl Into<String>) {
        self.push(
            path,
            FieldErrorKind::Invalid {
                value: format!("{value:?}"),
                detail: detail.into(),
            },
        );
    }

    fn check_supported(
        &mut self,
        path: impl Into<String>,
        value: Option<&str>,
        supported: &'static [&'static str],
    ) {
        match value {
            None | Some("") => self.push(path, FieldErrorKind::Required),
            Some(value) if !supported.contains(&value) => self.push(
                path,
                FieldErrorKind::NotSupported {
                    value: value.to_owned(),
                    supported,
                },
            ),
            Some(_) => {}
        }
    }
}

fn validate_spec(spec: &PodSpec, errors: &mut Errors) {
    errors.check_supported(
        "spec.restartPolicy",
        spec.restart_policy.as_deref(),
        RESTART_POLICIES,
    );
    errors.check_supported("spec.dnsPolicy", spec.dns_policy.as_deref(), DNS_POLICIES);
    let has_nameserver = spec
        .dns_config
        .as_ref()
        .and_then(|c| c.nameservers.as_ref())
        .is_some_and(|n| !n.is_empty());
    if spec.dns_policy.as_deref() == Some("None") && !has_nameserver {
        errors.push("spec.dnsConfig.nameservers", FieldErrorKind::Required);
    }

    let mut volume_names = HashSet::new();
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        let path = format!("spec.volumes[{i}].name");
        if volume.name.is_empty() {
            errors.push(path, FieldErrorKind::Required);
        } else if let Some(detail) = dns1123_label_problem(&volume.name) {
            errors.invalid(path, &volume.name, detail);
        } else if !volume_names.insert(volume.name.as_str()) {
            errors.push(path, FieldErrorKind::Duplicate(volume.name.clone()));
        }
    }

    if spec.containers.is_empty() {
        errors.push("spec.containers", FieldErrorKind::Required);
    }
    let mut container_names = HashSet::new();
    let init = spec.init_containers.iter().flatten().enumerate();
    for (i, container) in init {
        let path = format!("spec.initContainers[{i}]");
        if let Some(policy) = container.restart_policy.as_deref() {
            errors.check_supported(
                format!("{path}.restartPolicy"),
                Some(policy),
                INIT_CONTAINER_RESTART_POLICIES,
            );
        }
        validate_container(
            container,
            &path,
            &volume_names,
            &mut container_names,
            errors,
        );
    }
    for (i, container) in spec.containers.iter().enumerate() {
        let path = format!("spec.containers[{i}]");
        if container.restart_policy.is_some() {
            errors.push(
                format!("{path}.restartPolicy"),
                FieldErrorKind::Forbidden("may not be set for non-init containers"),
            );
        }
        validate_container(
            container,
            &path,
            &volume_names,
            &mut container_names,
            errors,
        );
    }
}

fn validate_container<'a>(
    container: &'a Container,
    path: &str,
    volumes: &HashSet<&str>,
    names: &mut HashSet<&'a str>,
    errors: &mut Errors,
) {
    let name = container.name.as_str();
    if name.is_empty() {
        errors.push(format!("{path}.name"), FieldErrorKind::Required);
    } else if let Some(detail) = dns1123_label_problem(name) {
        errors.invalid(format!("{path}.name"), name, detail);
    } else if !names.insert(name) {
        errors.push(
            format!("{path}.name"),
            FieldErrorKind::Duplicate(name.to_owned()),
        );
    }
    if container.image.as_deref().unwrap_or("").trim().is_empty() {
        errors.push(format!("{path}.image"), FieldErrorKind::Required);
    }
    errors.check_supported(
        format!("{path}.imagePullPolicy"),
        container.image_pull_policy.as_deref(),
        PULL_POLICIES,
    );

    for (i, port) in container.ports.iter().flatten().enumerate() {
        let port_path = format!("{path}.ports[{i}]");
        if !(1..=65535).contains(&port.container_port) {
            errors.push(
                format!("{port_path}.containerPort"),
                out_of_port_range(port.container_port),
            );
        }
        if let Some(host_port) = port.host_port
            && host_port != 0
            && !(1..=65535).contains(&host_port)
        {
            errors.push(
                format!("{port_path}.hostPort"),
                out_of_port_range(host_port),
            );
        }
        errors.check_supported(
            format!("{port_path}.protocol"),
            port.protocol.as_deref(),
            PROTOCOLS,
        );
    }

    for (i, env) in container.env.iter().flatten().enumerate() {
        let env_path = format!("{path}.env[{i}].name");
        if env.name.is_empty() {
            errors.push(env_path, FieldErrorKind::Required);
        } else if !env
            .name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
        {
            // The relaxed rule, on by default since 1.32.
            errors.invalid(
                env_path,
                &env.name,
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            );
        }
    }

    let mut mount_paths = HashSet::new();
    for (i, mount) in container.volume_mounts.iter().flatten().enumerate() {
        let mount_path = format!("{path}.volumeMounts[{i}]");
        if mount.name.is_empty() {
            errors.push(format!("{mount_path}.name"), FieldErrorKind::Required);
        } else if !volumes.contains(mount.name.as_str()) {
            errors.push(
                format!("{mount_path}.name"),
                FieldErrorKind::NotFound(mount.name.clone()),
            );
        }
        if mount.mount_path.is_empty() {
            errors.push(format!("{mount_path}.mountPath"), FieldErrorKind::Required);
        } else if !mount_paths.insert(mount.mount_path.as_str()) {
            errors.invalid(
                format!("{mount_path}.mountPath"),
                &mount.mount_path,
                "must be unique",
            );
        }
    }

    if let Some(resources) = &container.resources {
        let resources_path = format!("{path}.resources");
        let limits = parse_resource_list(
            resources.limits.as_ref(),
            &format!("{resources_path}.limits"),
            errors,
        );
        let requests = parse_resource_list(
            resources.requests.as_ref(),
            &format!("{resources_path}.requests"),
            errors,
        );
        for (name, (request, request_text)) in &requests {
            if let Some((limit, limit_text)) = limits.get(name)
                && request > limit
            {
                errors.invalid(
                    format!("{resources_path}.requests[{name}]"),
                    request_text,
                    format!("must be less than or equal to {name} limit of {limit_text}"),
                );
            }
        }
    }
}

/// Parses each quantity of a resource list, reporting the unparsable and negative ones.
fn parse_resource_list<'a>(
    list: Option<&'a BTreeMap<String, ApiQuantity>>,
    path: &str,
    errors: &mut Errors,
) -> BTreeMap<&'a str, (Quantity, &'a str)> {
    let mut parsed = BTreeMap::new();
    for (name, quantity) in list.into_iter().flatten() {
        let entry_path = format!("{path}[{name}]");
        match Quantity::parse(&quantity.0) {
            Err(e) => errors.invalid(entry_path, &quantity.0, e.to_string()),
            Ok(value) if value < Quantity::ZERO => {
                errors.invalid(
                    entry_path,
                    &quantity.0,
                    "must be greater than or equal to 0",
                );
            }
            Ok(value) => {
                parsed.insert(name.as_str(), (value, quantity.0.as_str()));
            }
        }
    }
    parsed
}

fn out_of_port_range(port: i32) -> FieldErrorKind {
    FieldErrorKind::Invalid {
        value: port.to_string(),
        detail: "must be between 1 and 65535, inclusive".to_owned(),
    }
}

const DNS1123_LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

fn dns1123_label_problem(value: &str) -> Option<String> {
    if value.len() > 63 {
        return Some("must be no more than 63 characters".to_owned());
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && alnum(bytes[0])
        && alnum(bytes[bytes.len() - 1])
        && bytes.iter().all(|&b| alnum(b) || b == b'-');
    (!ok).then(|| DNS1123_LABEL_MESSAGE.to_owned())
}

fn dns1123_subdomain_problem(value: &str) -> Option<String> {
    if value.len() > 253 {
        return Some("must be no more than 253 characters".to_owned());
    }
    let ok = value
        .split('.')
        .all(|label| dns1123_label_problem(label).is_none());
    (!ok).then(|| DNS1123_SUBDOMAIN_MESSAGE.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_defaults;
    use serde_json::json;

    fn errors_of(value: serde_json::Value) -> Vec<String> {
        let mut pod: Pod = serde_json::from_value(value).unwrap();
        api_defaults::apply(&mut pod);
        match validate_pod(&pod) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    fn pod_with(spec: serde_json::Value) -> serde_json::Value {
        json!({"metadata": {"name": "web-node1", "namespace": "default"}, "spec": spec})
    }

    fn single_error(spec: serde_json::Value) -> String {
        let errors = errors_of(pod_with(spec));
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.into_iter().next().unwrap()
    }

    #[test]
    fn valid_pod_passes() {
        let errors = errors_of(pod_with(json!({
            "volumes": [{"name": "data"}],
            "initContainers": [{"name": "init", "image": "x:1", "restartPolicy": "Always"}],
            "containers": [{"name": "a", "image": "x:1",
                "ports": [{"containerPort": 80, "hostPort": 8080}],
                "env": [{"name": "my.var-1", "value": "x"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}}]
        })));
        assert_eq!(errors, Vec::<String>::new());
    }

    #[test]
    fn metadata_rules() {
        let spec = json!({"containers": [{"name": "a", "image": "x"}]});
        assert_eq!(
            errors_of(json!({"metadata": {"namespace": "default"}, "spec": spec})),
            ["metadata.name: Required value"]
        );
        let errors =
            errors_of(json!({"metadata": {"name": "Web_1", "namespace": "default"}, "spec": spec}));
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with(
                "metadata.name: Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain"
            ),
            "{errors:?}"
        );
        let errors = errors_of(
            json!({"metadata": {"name": "web", "namespace": "kube.system"}, "spec": spec}),
        );
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with(
                "metadata.namespace: Invalid value: \"kube.system\": a lowercase RFC 1123 label"
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn container_list_and_names() {
        assert_eq!(
            single_error(json!({"containers": []})),
            "spec.containers: Required value"
        );
        assert_eq!(
            single_error(json!({"containers": [{"name": "", "image": "x"}]})),
            "spec.containers[0].name: Required value"
        );
        assert!(
            single_error(json!({"containers": [{"name": "A", "image": "x"}]}))
                .starts_with("spec.containers[0].name: Invalid value: \"A\"")
        );
        assert_eq!(
            single_error(json!({"initContainers": [{"name": "a", "image": "x"}],
                "containers": [{"name": "b", "image": "x"}, {"name": "a", "image": "x"}]})),
            "spec.containers[1].name: Duplicate value: \"a\""
        );
        assert_eq!(
            single_error(json!({"containers": [{"name": "a", "image": "x"}, {"name": "b"}]})),
            "spec.containers[1].image: Required value"
        );
    }

    #[test]
    fn policies() {
        assert_eq!(
            single_error(
                json!({"restartPolicy": "Sometimes", "containers": [{"name": "a", "image": "x"}]})
            ),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );
        assert!(
            single_error(
                json!({"dnsPolicy": "Google", "containers": [{"name": "a", "image": "x"}]})
            )
            .starts_with("spec.dnsPolicy: Unsupported value: \"Google\"")
        );
        assert_eq!(
            single_error(json!({"dnsPolicy": "None", "containers": [{"name": "a", "image": "x"}]})),
            "spec.dnsConfig.nameservers: Required value"
        );
        assert!(
            single_error(
                json!({"containers": [{"name": "a", "image": "x", "imagePullPolicy": "Sometimes"}]})
            )
            .starts_with("spec.containers[0].imagePullPolicy: Unsupported value")
        );
        assert!(
            single_error(
                json!({"initContainers": [{"name": "i", "image": "x", "restartPolicy": "Never"}],
            "containers": [{"name": "a", "image": "x"}]})
            )
            .starts_with("spec.initContainers[0].restartPolicy: Unsupported value: \"Never\"")
        );
        assert_eq!(
            single_error(
                json!({"containers": [{"name": "a", "image": "x", "restartPolicy": "Always"}]})
            ),
            "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"
        );
    }

    #[test]
    fn volumes_and_mounts() {
        assert_eq!(
            single_error(json!({"volumes": [{"name": "v"}, {"name": "v"}],
                "containers": [{"name": "a", "image": "x"}]})),
            "spec.volumes[1].name: Duplicate value: \"v\""
        );
        assert_eq!(
            single_error(json!({"containers": [{"name": "a", "image": "x",
                "volumeMounts": [{"name": "missing", "mountPath": "/m"}]}]})),
            "spec.containers[0].volumeMounts[0].name: Not found: \"missing\""
        );
        assert_eq!(
            single_error(
                json!({"volumes": [{"name": "v"}], "containers": [{"name": "a", "image": "x",
                "volumeMounts": [{"name": "v", "mountPath": ""}]}]})
            ),
            "spec.containers[0].volumeMounts[0].mountPath: Required value"
        );
        assert_eq!(
            single_error(
                json!({"volumes": [{"name": "v"}, {"name": "w"}], "containers": [{"name": "a", "image": "x",
                "volumeMounts": [{"name": "v", "mountPath": "/m"}, {"name": "w", "mountPath": "/m"}]}]})
            ),
            "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/m\": must be unique"
        );
    }

    #[test]
    fn ports() {
        assert_eq!(
            single_error(
                json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 70000}]}]})
            ),
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            single_error(
                json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": -1}]}]})
            ),
            "spec.containers[0].ports[0].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive"
        );
    }

    #[test]
    fn env_names() {
        assert_eq!(
            single_error(
                json!({"containers": [{"name": "a", "image": "x", "env": [{"name": ""}]}]})
            ),
            "spec.containers[0].env[0].name: Required value"
        );
        assert!(
            single_error(
                json!({"containers": [{"name": "a", "image": "x", "env": [{"name": "A=B"}]}]})
            )
            .starts_with("spec.containers[0].env[0].name: Invalid value: \"A=B\"")
        );
    }

    #[test]
    fn resources() {
        assert_eq!(
            single_error(json!({"containers": [{"name": "a", "image": "x",
                "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]})),
            "spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1"
        );
        assert!(single_error(json!({"containers": [{"name": "a", "image": "x",
                "resources": {"requests": {"memory": "lots"}}}]}))
            .starts_with("spec.containers[0].resources.requests[memory]: Invalid value: \"lots\": quantities must match"));
        assert_eq!(
            single_error(json!({"containers": [{"name": "a", "image": "x",
                "resources": {"requests": {"cpu": "-1"}}}]})),
            "spec.containers[0].resources.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0"
        );
    }
}
