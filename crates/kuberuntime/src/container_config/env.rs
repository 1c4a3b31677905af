//! A container's environment (upstream kubelet_pods.go `makeEnvironmentVariables`): envFrom
//! first, then env in order, each value expanded against the variables before it, valueFrom
//! resolved from the pod (downward API). ConfigMaps and Secrets need an API server, which this
//! kubelet does not have yet: a reference to one fails the container, as upstream without a
//! client does (even when optional).

use super::ContainerInput;
use super::expansion::expand;
use crate::container_config::resources::amount;
use crate::qos::quantity;
use k8s_openapi::api::core::v1::{ObjectFieldSelector, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::{BTreeMap, HashMap};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("couldn't get configMap {namespace}/{name}, no kubeClient defined")]
    ConfigMap { namespace: String, name: String },
    #[error("couldn't get secret {namespace}/{name}, no kubeClient defined")]
    Secret { namespace: String, name: String },
    #[error("unsupported fieldPath: {0}")]
    UnsupportedFieldPath(String),
    #[error("unsupported container resource: {0}")]
    UnsupportedResource(String),
    #[error("invalid divisor for {resource}: {divisor}")]
    InvalidDivisor { resource: String, divisor: String },
    #[error("the node's IP is not known yet, needed by env {0}")]
    HostIpUnknown(String),
}

/// The environment, in declaration order; a later definition of a name replaces the value of
/// the earlier one in place. (Upstream collects through a Go map, so its order is arbitrary.)
pub fn environment(input: &ContainerInput<'_>) -> Result<Vec<(String, String)>, EnvError> {
    let pod = input.pod;
    let c = input.container;
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut env = Env::default();
    for from in c.env_from.iter().flatten() {
        if let Some(cm) = &from.config_map_ref {
            return Err(EnvError::ConfigMap {
                namespace,
                name: cm.name.clone(),
            });
        }
        if let Some(secret) = &from.secret_ref {
            return Err(EnvError::Secret {
                namespace,
                name: secret.name.clone(),
            });
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
                } else if let Some(cm) = &from.config_map_key_ref {
                    return Err(EnvError::ConfigMap {
                        namespace,
                        name: cm.name.clone(),
                    });
                } else if let Some(s) = &from.secret_key_ref {
                    return Err(EnvError::Secret {
                        namespace,
                        name: s.name.clone(),
                    });
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
        quantity::milli_value(&divisor_q)
    } else {
        quantity::value(&divisor_q)
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
