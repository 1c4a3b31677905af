//! CSI drivers (upstream pkg/volume/csi): the registration handler the plugin watcher hands
//! `CSIPlugin` sockets to. It validates the driver's CSI versions, remembers its endpoint by
//! name, asks it NodeGetInfo, and has the node info manager record the answer in the cluster
//! (Node annotation and labels, CSINode); deregistration undoes the cluster side. Registered
//! drivers then serve CSI persistent volumes ([`volumes`]), raw block ones included.

mod access_modes;
mod block;
pub mod client;
mod fs_group;
pub mod nodeinfo;
mod tokens;
pub mod version;
pub mod volume_stats;
pub mod volumes;

use client::NodeCapabilities;
use nodeinfo::NodeInfoManager;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use version::Version;

/// The in-tree plugin's name, also the prefix of its log lines and errors.
pub const CSI_PLUGIN_NAME: &str = "kubernetes.io/csi";

/// Upstream's log(): messages prefixed with the plugin's name.
pub(crate) fn log(msg: &str) -> String {
    format!("{CSI_PLUGIN_NAME}: {msg}")
}

#[derive(Debug, Error)]
pub enum CsiError {
    #[error("validation failed for CSI Driver {name} at endpoint {endpoint}: {reason}")]
    Validation {
        name: String,
        endpoint: String,
        reason: String,
    },
    #[error("{0}")]
    NodeGetInfo(String),
    #[error("error adding CSI driver node info: driverNodeID must not be empty")]
    EmptyNodeId,
}

/// A registered driver.
#[derive(Debug, Clone)]
struct Driver {
    endpoint: PathBuf,
    highest_version: Version,
    /// NodeGetCapabilities' answer, asked once per registration.
    capabilities: Option<NodeCapabilities>,
}

/// The CSI registration handler; clones share the registered drivers.
#[derive(Clone)]
pub struct CsiPlugins {
    drivers: Arc<Mutex<BTreeMap<String, Driver>>>,
    /// None standalone: drivers register, nothing is recorded in a cluster.
    node_info: Option<NodeInfoManager>,
}

/// Go's %q of a string list: `["a" "b"]`.
pub(crate) fn quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

impl CsiPlugins {
    /// With an API client, the node info of registered drivers is kept in the cluster for
    /// `node_name`.
    pub fn new(api: Option<kube::Client>, node_name: &str) -> Self {
        CsiPlugins {
            drivers: Arc::default(),
            node_info: api.map(|client| NodeInfoManager::start(client, node_name.to_string())),
        }
    }

    fn drivers(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Driver>> {
        self.drivers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The socket of the registered driver `name`.
    pub fn endpoint(&self, name: &str) -> Option<PathBuf> {
        self.drivers().get(name).map(|d| d.endpoint.clone())
    }

    /// The Node service capabilities of the registered driver `name`, asked on first need
    /// after each registration.
    pub async fn capabilities(&self, name: &str) -> Result<NodeCapabilities, String> {
        let driver = self.drivers().get(name).cloned().ok_or_else(|| {
            format!("driver name {name} not found in the list of registered CSI drivers")
        })?;
        if let Some(known) = driver.capabilities {
            return Ok(known);
        }
        let asked = client::node_get_capabilities(&driver.endpoint).await?;
        // Kept only if the same registration is still there.
        if let Some(current) = self.drivers().get_mut(name)
            && current.endpoint == driver.endpoint
            && current.highest_version == driver.highest_version
        {
            current.capabilities = Some(asked);
        }
        Ok(asked)
    }

    /// Upstream's validateVersions: a 1.x version, and not lower than one already registered
    /// under the same name.
    fn validate_versions(
        &self,
        caller: &str,
        name: &str,
        versions: &[String],
    ) -> Result<Version, String> {
        if versions.is_empty() {
            return Err(log(&format!(
                "{caller} for CSI driver {name:?} failed. Plugin returned an empty list for supported versions"
            )));
        }
        let highest = version::highest_supported(versions).map_err(|e| {
            log(&format!(
                "{caller} for CSI driver {name:?} failed. None of the versions specified {} are supported. err={e}",
                quoted_list(versions)
            ))
        })?;
        if let Some(existing) = self.drivers().get(name)
            && existing.highest_version >= highest
        {
            return Err(log(&format!(
                "{caller} for CSI driver {name:?} failed. Another driver with the same name is already registered with a higher supported version: \"{}\"",
                existing.highest_version
            )));
        }
        Ok(highest)
    }

    /// ValidatePlugin then RegisterPlugin, as the plugin watcher calls them in turn.
    pub async fn register(
        &self,
        name: &str,
        endpoint: &Path,
        versions: &[String],
    ) -> Result<(), CsiError> {
        let span =
            tracing::info_span!("csi_register", driver = name, endpoint = %endpoint.display());
        let _enter = span.enter();
        tracing::info!(
            "{}",
            log(&format!(
                "Trying to validate a new CSI Driver with name: {name} endpoint: {} versions: {}",
                endpoint.display(),
                versions.join(",")
            ))
        );
        let highest = self
            .validate_versions("ValidatePlugin", name, versions)
            .map_err(|reason| CsiError::Validation {
                name: name.to_string(),
                endpoint: endpoint.display().to_string(),
                reason,
            })?;
        tracing::info!(
            "{}",
            log(&format!(
                "Register new plugin with name: {name} at endpoint: {}",
                endpoint.display()
            ))
        );
        self.drivers().insert(
            name.to_string(),
            Driver {
                endpoint: endpoint.to_path_buf(),
                highest_version: highest,
                capabilities: None,
            },
        );
        drop(_enter);
        let info = match client::node_get_info(endpoint).await {
            Ok(info) if info.node_id.is_empty() => Err(CsiError::EmptyNodeId),
            Ok(info) => Ok(info),
            Err(e) => Err(CsiError::NodeGetInfo(e)),
        };
        match info {
            Ok(info) => {
                if let Some(manager) = &self.node_info {
                    manager.install(name, info);
                }
                Ok(())
            }
            Err(e) => {
                self.drivers().remove(name);
                Err(e)
            }
        }
    }

    /// The driver's socket went: forget it and remove its node info from the cluster.
    pub fn deregister(&self, name: &str) {
        tracing::info!(
            driver = name,
            "{}",
            log(&format!(
                "registrationHandler.DeRegisterPlugin request for plugin {name}"
            ))
        );
        self.drivers().remove(name);
        if let Some(manager) = &self.node_info {
            manager.uninstall(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn validation_errors_use_upstreams_words() {
        let csi = CsiPlugins::new(None, "n");
        let err = csi
            .register("drv", Path::new("/nonexistent.sock"), &versions(&["2.0.0"]))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "validation failed for CSI Driver drv at endpoint /nonexistent.sock: kubernetes.io/csi: ValidatePlugin for CSI driver \"drv\" failed. None of the versions specified [\"2.0.0\"] are supported. err=could not find a highest supported version from versions ([2.0.0]) reported by this driver: <nil>"
        );
        let err = csi
            .register("drv", Path::new("/nonexistent.sock"), &[])
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("Plugin returned an empty list for supported versions"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_driver_that_cannot_answer_node_get_info_is_not_kept() {
        let csi = CsiPlugins::new(None, "n");
        let err = csi
            .register("drv", Path::new("/nonexistent.sock"), &versions(&["1.0.0"]))
            .await
            .unwrap_err();
        assert!(matches!(err, CsiError::NodeGetInfo(_)), "{err}");
        assert!(
            err.to_string().starts_with("rpc error: code = Unavailable"),
            "{err}"
        );
        assert_eq!(csi.endpoint("drv"), None);
    }
}
