//! Cluster mode (--kubeconfig): the API client, then the Node's registration, its status loop,
//! its Lease, and the pressure measurements the status reports.

use crate::app::AppError;
use k8s_openapi::api::core::v1::{Node, Taint};
use kubelet_certificates::CertificateManager;
use kubelet_config::KubeletConfig;
use kubelet_nodestatus::{
    ApiRateLimit, HardEviction, LeaseConfig, LeaseLoop, MachineFacts, NodeInfoSource,
    NodeStatusConfig, NodeStatusLoop, PressureInputs, Reserved, Threshold,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;

/// The API server, as the kubelet talks to it.
pub struct Api {
    pub client: kube::Client,
    /// Its address as the kubeconfig names it, for messages.
    pub server: String,
}

/// The API client from --kubeconfig, after TLS bootstrap when a bootstrap kubeconfig is given;
/// with rotateCertificates its client certificate is renewed for as long as the kubelet runs.
pub async fn connect(cfg: &KubeletConfig, kubeconfig: &Path) -> Result<Api, AppError> {
    kubelet_nodestatus::wire_content_type(&cfg.kube_api_content_type);
    let limit = ApiRateLimit {
        qps: cfg.kube_api_qps as f32,
        burst: cfg.kube_api_burst,
    };
    let setup = |what: &str, e: &dyn std::fmt::Display| AppError::Setup(format!("{what}: {e}"));
    if let Some(bootstrap) = &cfg.bootstrap_kubeconfig {
        kubelet_certificates::bootstrap(kubeconfig, bootstrap, &cfg.cert_dir, &cfg.node_name)
            .await
            .map_err(|e| setup("TLS bootstrap", &e))?;
    }
    let client = if cfg.rotate_certificates {
        let manager = CertificateManager::client(&cfg.cert_dir, &cfg.node_name, kubeconfig)
            .map_err(|e| setup("client certificate rotation", &e))?;
        let client = kubelet_nodestatus::client_from_kubeconfig_with_certificate(
            kubeconfig,
            limit,
            manager.current(),
        )
        .await
        .map_err(|e| setup("API client", &e))?;
        tokio::spawn(manager.run(client.clone()));
        client
    } else {
        kubelet_nodestatus::client_from_kubeconfig(kubeconfig, limit)
            .await
            .map_err(|e| setup("API client", &e))?
    };
    let server = kube::config::Kubeconfig::read_from(kubeconfig)
        .ok()
        .and_then(|k| k.clusters.into_iter().next())
        .and_then(|c| c.cluster)
        .and_then(|c| c.server)
        .unwrap_or_else(|| kubeconfig.display().to_string());
    Ok(Api { client, server })
}

/// Registers the Node (in the background, retrying while the API server is away), then keeps
/// its status (with the pressure and readiness `pressure_rx` publishes) and Lease up to date.
/// The Node as last seen is published on the answer.
pub fn start_node(
    client: kube::Client,
    cfg: &KubeletConfig,
    pressure_rx: watch::Receiver<PressureInputs>,
    runtime_version: String,
    extended: Option<kubelet_nodestatus::ExtendedResources>,
    volumes_in_use: kubelet_nodestatus::VolumesInUse,
) -> watch::Receiver<Option<Node>> {
    let (node_tx, node_rx) = watch::channel(None);
    let info = node_info(cfg, runtime_version);
    let register = cfg.register_node;
    let root_dir = cfg.root_dir.clone();
    let status_config = NodeStatusConfig {
        update_frequency: cfg.node_status_update_frequency,
        report_frequency: cfg.node_status_report_frequency,
        ..NodeStatusConfig::default()
    };
    let lease_config = LeaseConfig {
        lease_duration_seconds: cfg.node_lease_duration_seconds as i32,
        ..LeaseConfig::default()
    };
    tokio::spawn(async move {
        let machine = match MachineFacts::read(&root_dir) {
            Ok(machine) => machine,
            Err(e) => {
                tracing::error!("cannot read the machine's facts, the node is not registered: {e}");
                return;
            }
        };
        kubelet_nodestatus::record_starting_event(&client, &info.node_name).await;
        if register {
            let inputs = pressure_rx.borrow().clone();
            let node =
                kubelet_nodestatus::register_node_until_success(&client, &info, &machine, &inputs)
                    .await;
            node_tx.send_replace(Some(node));
        }
        let lease = LeaseLoop::new(client.clone(), info.node_name.clone(), lease_config);
        tokio::spawn(lease.run());
        let mut status_loop =
            NodeStatusLoop::new(client, info, machine, pressure_rx, status_config)
                .publish_to(node_tx)
                .with_volumes_in_use(volumes_in_use);
        if let Some(extended) = extended {
            status_loop = status_loop.with_extended_resources(extended);
        }
        status_loop.run().await;
    });
    node_rx
}

/// serverTLSBootstrap: the serving certificate comes from a CSR for the Node's addresses and is
/// renewed before it expires; until one is issued, --tls-cert-file (if given) is served.
pub fn serving_certificate(
    cfg: &KubeletConfig,
    api: &Api,
    node: watch::Receiver<Option<Node>>,
) -> Result<Arc<dyn rustls::server::ResolvesServerCert>, AppError> {
    let tls_files = cfg
        .tls_cert_file
        .as_deref()
        .zip(cfg.tls_private_key_file.as_deref());
    let addresses = move || {
        node.borrow()
            .as_ref()
            .and_then(|n| n.status.as_ref()?.addresses.clone())
            .unwrap_or_default()
    };
    let manager = CertificateManager::serving(&cfg.cert_dir, &cfg.node_name, tls_files, addresses)
        .map_err(|e| AppError::Setup(format!("serving certificate: {e}")))?;
    let resolver = manager.current().server_resolver();
    tokio::spawn(manager.run(api.client.clone()));
    Ok(resolver)
}

/// Downward API `limits.*` items of containers without that limit read the Node's allocatable.
pub async fn follow_allocatable(
    mut node: watch::Receiver<Option<Node>>,
    volumes: Arc<kubelet_volumes::VolumeManager>,
) {
    loop {
        let allocatable = node
            .borrow_and_update()
            .as_ref()
            .and_then(|n| n.status.as_ref()?.allocatable.clone());
        if let Some(allocatable) = allocatable {
            volumes.set_node_allocatable(allocatable);
        }
        if node.changed().await.is_err() {
            return;
        }
    }
}

fn node_info(cfg: &KubeletConfig, runtime_version: String) -> NodeInfoSource {
    let hostname = cfg.node_name.clone();
    let node_ips = if cfg.node_ips.is_empty() {
        kubelet_nodestatus::detect_node_ip(&hostname)
            .into_iter()
            .collect()
    } else {
        cfg.node_ips.clone()
    };
    NodeInfoSource {
        node_name: cfg.node_name.clone(),
        hostname,
        node_ips,
        labels: cfg.node_labels.clone(),
        taints: cfg
            .register_with_taints
            .iter()
            .map(|t| Taint {
                key: t.key.clone(),
                value: Some(t.value.clone()).filter(|v| !v.is_empty()),
                effect: t.effect.clone(),
                time_added: None,
            })
            .collect(),
        kubelet_port: cfg.port,
        runtime_version,
        max_pods: cfg.max_pods,
        reserved: reserved(&cfg.kube_reserved, &cfg.system_reserved),
        eviction_hard: HardEviction {
            memory_available: threshold(cfg.eviction_hard.get("memory.available")),
            nodefs_available: threshold(cfg.eviction_hard.get("nodefs.available")),
        },
        controller_attach_detach: true,
    }
}

fn threshold(amount: Option<&String>) -> Option<Threshold> {
    let amount = amount?;
    match amount.strip_suffix('%') {
        Some(percent) => percent
            .parse::<f64>()
            .ok()
            .map(|p| Threshold::Percentage(p / 100.0)),
        None => bytes(amount).map(Threshold::Bytes),
    }
}

fn bytes(text: &str) -> Option<u64> {
    u64::try_from(kubelet_quantity::value(text).ok()?).ok()
}

/// --kube-reserved plus --system-reserved.
fn reserved(kube: &BTreeMap<String, String>, system: &BTreeMap<String, String>) -> Reserved {
    let mut total = Reserved::default();
    for map in [kube, system] {
        if let Some(cpu) = map.get("cpu") {
            let millis = kubelet_quantity::milli_value(cpu).unwrap_or(0);
            total.cpu_millis += u64::try_from(millis).unwrap_or(0);
        }
        total.memory_bytes += map.get("memory").and_then(|m| bytes(m)).unwrap_or(0);
        total.ephemeral_storage_bytes += map
            .get("ephemeral-storage")
            .and_then(|m| bytes(m))
            .unwrap_or(0);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_adds_kube_and_system() {
        let kube = BTreeMap::from([
            ("cpu".into(), "100m".into()),
            ("memory".into(), "1Gi".into()),
        ]);
        let system = BTreeMap::from([
            ("cpu".into(), "1".into()),
            ("ephemeral-storage".into(), "2Gi".into()),
        ]);
        assert_eq!(
            reserved(&kube, &system),
            Reserved {
                cpu_millis: 1100,
                memory_bytes: 1 << 30,
                ephemeral_storage_bytes: 2 << 30,
            }
        );
    }

    #[test]
    fn thresholds_in_both_forms() {
        assert_eq!(
            threshold(Some(&"10%".into())),
            Some(Threshold::Percentage(0.1))
        );
        assert_eq!(
            threshold(Some(&"100Mi".into())),
            Some(Threshold::Bytes(100 << 20))
        );
        assert_eq!(threshold(None), None);
    }
}
