//! A container's environment (upstream kubelet_pods.go `makeEnvironmentVariables`): the
//! service link variables, then envFrom, then env in order, each value expanded against the
//! variables before it (service variables included), valueFrom resolved from the pod (downward
//! API) or from the ConfigMaps and Secrets read beforehand into [`EnvSources`].

use super::ContainerInput;
use super::env_sources::{EnvSources, Fetched, ServicesUnavailable};
use super::expansion::expand;
use super::service_env;
use crate::container_config::resources::amount;
use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::{BTreeMap, HashMap};
use thiserror::Error;

/// The event reason for envFrom keys that cannot be variable names.
pub const INVALID_ENVIRONMENT_VARIABLE_NAMES: &str = "InvalidEnvironmentVariableNames";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("couldn't get configMap {namespace}/{name}, no kubeClient defined")]
    ConfigMap { namespace: String, name: String },
    #[error("couldn't get secret {namespace}/{name}, no kubeClient defined")]
    Secret { namespace: String, name: String },
    /// The API server's NotFound, as the kubelet's object cache words it.
    #[error("{kind} \"{name}\" not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{0}")]
    Fetch(String),
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    MissingKey {
        key: String,
        kind: &'static str,
        namespace: String,
        name: String,
    },
    #[error(transparent)]
    Services(#[from] ServicesUnavailable),
    #[error("unsupported fieldPath: {0}")]
    UnsupportedFieldPath(String),
    #[error("unsupported container resource: {0}")]
    UnsupportedResource(String),
    #[error("invalid divisor for {resource}: {divisor}")]
    InvalidDivisor { resource: String, divisor: String },
    #[error("the node's IP is not known yet, needed by env {0}")]
    HostIpUnknown(String),
}

#[derive(Clone, Copy)]
enum Source {
    ConfigMap,
    Secret,
}

/// Upstream's messages name the kind differently: "configMap" in the no-client error and the
/// invalid-names event, "configmap" in NotFound, "ConfigMap" for a missing key.
impl Source {
    fn no_client(self, namespace: &str, name: &str) -> EnvError {
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        match self {
            Source::ConfigMap => EnvError::ConfigMap { namespace, name },
            Source::Secret => EnvError::Secret { namespace, name },
        }
    }

    fn resource(self) -> &'static str {
        match self {
            Source::ConfigMap => "configmap",
            Source::Secret => "secret",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Source::ConfigMap => "ConfigMap",
            Source::Secret => "Secret",
        }
    }

    fn event_name(self) -> &'static str {
        match self {
            Source::ConfigMap => "configMap",
            Source::Secret => "secret",
        }
    }
}

/// The object `name` refers to; `None` when it is missing and the reference optional.
fn object<'s, T>(
    fetched: &'s BTreeMap<String, Fetched<T>>,
    source: Source,
    namespace: &str,
    name: &str,
    optional: bool,
) -> Result<Option<&'s T>, EnvError> {
    match fetched.get(name) {
        Some(Fetched::Found(o)) => Ok(Some(o)),
        Some(Fetched::NotFound) if optional => Ok(None),
        Some(Fetched::NotFound) => Err(EnvError::NotFound {
            kind: source.resource(),
            name: name.to_owned(),
        }),
        Some(Fetched::Failed(message)) => Err(EnvError::Fetch(message.clone())),
        // Upstream refuses before looking at `optional` when it has no client.
        Some(Fetched::NoClient) | None => Err(source.no_client(namespace, name)),
    }
}

fn config_map_data(cm: &k8s_openapi::api::core::v1::ConfigMap) -> BTreeMap<String, String> {
    cm.data.clone().unwrap_or_default()
}

fn secret_data(secret: &k8s_openapi::api::core::v1::Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// Whether `name` can be an environment variable's name: printable ASCII without '=' (the
/// API's relaxed rule, on by default since 1.32). Other envFrom keys are skipped.
pub fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// The messages of the InvalidEnvironmentVariableNames events for `container`: one per envFrom
/// source with keys that cannot be variable names (they are skipped).
pub fn invalid_env_from_keys(
    pod: &Pod,
    container: &Container,
    sources: &EnvSources,
) -> Vec<String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut messages = Vec::new();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let (source, name, keys) = if let Some(r) = &from.config_map_ref {
            let data = match sources.config_maps.get(&r.name) {
                Some(Fetched::Found(cm)) => config_map_data(cm),
                _ => continue,
            };
            (
                Source::ConfigMap,
                &r.name,
                data.into_keys().collect::<Vec<_>>(),
            )
        } else if let Some(r) = &from.secret_ref {
            let data = match sources.secrets.get(&r.name) {
                Some(Fetched::Found(s)) => secret_data(s),
                _ => continue,
            };
            (Source::Secret, &r.name, data.into_keys().collect())
        } else {
            continue;
        };
        let invalid: Vec<String> = keys
            .into_iter()
            .map(|k| format!("{prefix}{k}"))
            .filter(|k| !is_env_var_name(k))
            .collect();
        if !invalid.is_empty() {
            messages.push(format!(
                "Keys [{}] from the EnvFrom {} {namespace}/{name} were skipped since they are considered invalid environment variable names.",
                invalid.join(", "),
                source.event_name()
            ));
        }
    }
    messages
}

/// The environment in order: service variables, envFrom, env; a later definition of a name
/// replaces the value of the earlier one in place. (Upstream collects through Go maps, so its
/// order is arbitrary.)
pub fn environment(input: &ContainerInput<'_>) -> Result<Vec<(String, String)>, EnvError> {
    let pod = input.pod;
    let c = input.container;
    let sources = &input.env_sources;
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut env = Env::default();
    let services = sources.services.as_ref().map_err(Clone::clone)?;
    for (name, value) in service_env::from_services(services) {
        env.set(&name, value);
    }
    for from in c.env_from.iter().flatten() {
        let data = if let Some(r) = &from.config_map_ref {
            let optional = r.optional.unwrap_or(false);
            object(
                &sources.config_maps,
                Source::ConfigMap,
                &namespace,
                &r.name,
                optional,
            )?
            .map(config_map_data)
        } else if let Some(r) = &from.secret_ref {
            let optional = r.optional.unwrap_or(false);
            object(
                &sources.secrets,
                Source::Secret,
                &namespace,
                &r.name,
                optional,
            )?
            .map(secret_data)
        } else {
            continue;
        };
        // A missing optional source gives nothing.
        let Some(data) = data else {
            continue;
        };
        let prefix = from.prefix.as_deref().unwrap_or_default();
        for (key, value) in data {
            let name = format!("{prefix}{key}");
            if is_env_var_name(&name) {
                env.set(&name, value);
            }
        }
    }
    for var in c.env.iter().flatten() {
        let value = match (
            var.value.as_deref().filter(|v| !v.is_empty()),
            &var.value_from,
        ) {
            (Some(v), _) => expand(v, |name| env.get(name)),
            (None, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    field_value(input, f, &var.name)?
                } else if let Some(r) = &from.resource_field_ref {
                    resource_value(input, r)?
                } else if let Some(r) = &from.config_map_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    let found = object(
                        &sources.config_maps,
                        Source::ConfigMap,
                        &namespace,
                        &r.name,
                        optional,
                    )?;
                    match key_value(
                        found.map(config_map_data),
                        Source::ConfigMap,
                        &namespace,
                        &r.name,
                        &r.key,
                        optional,
                    )? {
                        Some(v) => v,
                        None => continue,
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    let found = object(
                        &sources.secrets,
                        Source::Secret,
                        &namespace,
                        &r.name,
                        optional,
                    )?;
                    match key_value(
                        found.map(secret_data),
                        Source::Secret,
                        &namespace,
                        &r.name,
                        &r.key,
                        optional,
                    )? {
                        Some(v) => v,
                        None => continue,
                    }
                } else {
                    String::new()
                }
            }
            (None, None) => String::new(),
        };
        env.set(&var.name, value);
    }
    Ok(env.vars)
}

/// The value of `key` in an object's data; `None` (the variable is skipped) when the object or
/// the key is missing and the reference is optional.
fn key_value(
    data: Option<BTreeMap<String, String>>,
    source: Source,
    namespace: &str,
    name: &str,
    key: &str,
    optional: bool,
) -> Result<Option<String>, EnvError> {
    let Some(mut data) = data else {
        return Ok(None);
    };
    match data.remove(key) {
        Some(v) => Ok(Some(v)),
        None if optional => Ok(None),
        None => Err(EnvError::MissingKey {
            key: key.to_owned(),
            kind: source.kind(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
    }
}

#[derive(Default)]
struct Env {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl Env {
    fn get(&self, name: &str) -> Option<String> {
        self.index.get(name).map(|i| self.vars[*i].1.clone())
    }

    fn set(&mut self, name: &str, value: String) {
        match self.index.get(name) {
            Some(i) => self.vars[*i].1 = value,
            None => {
                self.index.insert(name.to_owned(), self.vars.len());
                self.vars.push((name.to_owned(), value));
            }
        }
    }
}

/// `podFieldSelectorRuntimeValue` for the fields the API allows in env.
fn field_value(
    input: &ContainerInput<'_>,
    f: &ObjectFieldSelector,
    env_name: &str,
) -> Result<String, EnvError> {
    let pod = input.pod;
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let pod_ip = input
        .pod_ips
        .first()
        .cloned()
        .or_else(|| input.pod_ip.clone())
        .unwrap_or_default();
    let host_ip = || {
        input
            .host_ip
            .clone()
            .ok_or_else(|| EnvError::HostIpUnknown(env_name.to_owned()))
    };
    let subscript = |prefix: &str| {
        f.field_path
            .strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")
            .map(str::to_owned)
    };
    let lookup = |map: &Option<BTreeMap<String, String>>, key: String| {
        map.as_ref()
            .and_then(|m| m.get(&key))
            .cloned()
            .unwrap_or_default()
    };
    Ok(match f.field_path.as_str() {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => host_ip()?,
        "status.podIP" => pod_ip,
        "status.podIPs" => {
            if input.pod_ips.is_empty() {
                pod_ip
            } else {
                input.pod_ips.join(",")
            }
        }
        path => {
            if let Some(key) = subscript("metadata.labels") {
                lookup(&meta.labels, key)
            } else if let Some(key) = subscript("metadata.annotations") {
                lookup(&meta.annotations, key)
            } else {
                return Err(EnvError::UnsupportedFieldPath(path.to_owned()));
            }
        }
    })
}

/// `containerResourceRuntimeValue`: the container's request or limit divided by the divisor,
/// rounded up; a missing cpu or memory limit reads as the node's allocatable amount.
fn resource_value(
    input: &ContainerInput<'_>,
    r: &ResourceFieldSelector,
) -> Result<String, EnvError> {
    let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => input
            .pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .find(|c| c.name == name)
            .unwrap_or(input.container),
        None => input.container,
    };
    let res = target.resources.as_ref();
    let (requests, limits) = (
        res.and_then(|r| r.requests.as_ref()),
        res.and_then(|r| r.limits.as_ref()),
    );
    let (kind, resource) = r
        .resource
        .split_once('.')
        .ok_or_else(|| EnvError::UnsupportedResource(r.resource.clone()))?;
    let is_cpu = resource == "cpu";
    let value = match (kind, resource) {
        ("requests", "cpu" | "memory" | "ephemeral-storage") => {
            amount(requests, resource).unwrap_or_default()
        }
        ("limits", "cpu") => amount(limits, resource).unwrap_or_else(|| {
            input
                .node_allocatable_cpu_milli
                .map_or(0, |m| i64::try_from(m).unwrap_or(i64::MAX))
        }),
        ("limits", "memory") => amount(limits, resource)
            .unwrap_or_else(|| i64::try_from(input.node_memory_capacity).unwrap_or(i64::MAX)),
        ("limits", "ephemeral-storage") => amount(limits, resource).unwrap_or_default(),
        ("requests" | "limits", name) if name.starts_with("hugepages-") => {
            amount(if kind == "requests" { requests } else { limits }, name).unwrap_or_default()
        }
        _ => return Err(EnvError::UnsupportedResource(r.resource.clone())),
    };
    let divisor_q = r
        .divisor
        .clone()
        .filter(|d| !d.0.is_empty())
        .unwrap_or_else(|| Quantity("1".into()));
    let divisor = if is_cpu {
        kubelet_quantity::milli_value(&divisor_q.0)
    } else {
        kubelet_quantity::value(&divisor_q.0)
    };
    let invalid = || EnvError::InvalidDivisor {
        resource: r.resource.clone(),
        divisor: divisor_q.0.clone(),
    };
    let divisor = divisor.map_err(|_| invalid())?;
    // An explicit zero divisor is treated as 1, like upstream's comparison against zero.
    let divisor = if divisor == 0 {
        if is_cpu { 1000 } else { 1 }
    } else {
        divisor
    };
    Ok((value as f64 / divisor as f64).ceil().to_string())
}
