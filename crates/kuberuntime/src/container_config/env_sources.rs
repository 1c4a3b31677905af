//! The API objects a container's environment refers to, read before its config is built so
//! that building stays synchronous: the ConfigMaps and Secrets of env and envFrom, and the
//! Services whose link variables the container gets (upstream getServiceEnvVarMap).

use super::service_env::has_cluster_ip;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kubelet_objects::{ObjectError, ObjectSource};
use std::collections::{BTreeMap, BTreeSet};

/// The Services upstream always projects from the `default` namespace.
const MASTER_SERVICE: &str = "kubernetes";

/// What reading one object gave.
#[derive(Debug, Clone)]
pub enum Fetched<T> {
    Found(T),
    NotFound,
    /// There is no API server (the standalone kubelet).
    NoClient,
    /// Any other failure, as its message.
    Failed(String),
}

impl<T> Fetched<T> {
    fn from(result: Result<T, ObjectError>) -> Self {
        match result {
            Ok(o) => Fetched::Found(o),
            Err(e) if e.is_not_found() => Fetched::NotFound,
            Err(ObjectError::NoClient { .. }) => Fetched::NoClient,
            Err(e) => Fetched::Failed(e.to_string()),
        }
    }
}

/// A snapshot of the objects one container's environment refers to, by name in the pod's
/// namespace. A reference the snapshot lacks reads as if there were no API server.
#[derive(Debug, Clone)]
pub struct EnvSources {
    pub config_maps: BTreeMap<String, Fetched<ConfigMap>>,
    pub secrets: BTreeMap<String, Fetched<Secret>>,
    /// The Services whose variables the container gets, by name; `Err` if they could not be
    /// listed.
    pub services: Result<Vec<Service>, ServicesUnavailable>,
}

/// Listing the Services failed; the message is upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to list services when setting up env vars")]
pub struct ServicesUnavailable;

impl Default for EnvSources {
    fn default() -> Self {
        Self {
            config_maps: BTreeMap::new(),
            secrets: BTreeMap::new(),
            services: Ok(Vec::new()),
        }
    }
}

impl EnvSources {
    /// Reads what `container` of `pod` refers to.
    pub async fn fetch(objects: &dyn ObjectSource, pod: &Pod, container: &Container) -> Self {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let (mut cm_names, mut secret_names) = (BTreeSet::new(), BTreeSet::new());
        for from in container.env_from.iter().flatten() {
            cm_names.extend(from.config_map_ref.as_ref().map(|r| r.name.clone()));
            secret_names.extend(from.secret_ref.as_ref().map(|r| r.name.clone()));
        }
        for from in container
            .env
            .iter()
            .flatten()
            .filter_map(|v| v.value_from.as_ref())
        {
            cm_names.extend(from.config_map_key_ref.as_ref().map(|r| r.name.clone()));
            secret_names.extend(from.secret_key_ref.as_ref().map(|r| r.name.clone()));
        }
        let mut sources = EnvSources::default();
        for name in cm_names {
            let got = Fetched::from(objects.config_map(namespace, &name).await);
            sources.config_maps.insert(name, got);
        }
        for name in secret_names {
            let got = Fetched::from(objects.secret(namespace, &name).await);
            sources.secrets.insert(name, got);
        }
        let links = pod
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .unwrap_or(true);
        sources.services = services(objects, namespace, links).await;
        sources
    }
}

/// The `kubernetes` Service of `default` always; with service links, every Service of the
/// pod's namespace too (a Service there wins over the master Service of the same name);
/// Services without a cluster IP are left out.
async fn services(
    objects: &dyn ObjectSource,
    namespace: &str,
    links: bool,
) -> Result<Vec<Service>, ServicesUnavailable> {
    let list = async |ns: &str| {
        objects.services(ns).await.map_err(|e| {
            tracing::warn!(namespace = ns, "cannot list services for env vars: {e}");
            ServicesUnavailable
        })
    };
    let mut by_name = BTreeMap::new();
    let default = list("default").await?;
    let name = |s: &Service| s.metadata.name.clone().unwrap_or_default();
    for svc in default
        .iter()
        .filter(|s| has_cluster_ip(s) && name(s) == MASTER_SERVICE)
    {
        by_name.insert(name(svc), svc.clone());
    }
    if links {
        let own = if namespace == "default" {
            default
        } else {
            list(namespace).await?
        };
        for svc in own.into_iter().filter(has_cluster_ip) {
            by_name.insert(name(&svc), svc);
        }
    }
    Ok(by_name.into_values().collect())
}
