//! The /metrics/cadvisor series dashboards use most, with cAdvisor's names and labels, built
//! from CRI container stats and the containers' memory cgroups.

use crate::error::StatsError;
use crate::exposition::{FamilyText, Kind, render};
use crate::provider::StatsProvider;
use crate::types::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kubelet_cri::Runtime;
use kubelet_cri::api::{self, ContainerState};
use std::collections::HashMap;

const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";

fn label(labels: &HashMap<String, String>, key: &str) -> String {
    labels.get(key).cloned().unwrap_or_default()
}

impl StatsProvider {
    /// The /metrics/cadvisor body (Prometheus text 0.0.4) for the running containers.
    pub async fn cadvisor_metrics(
        &self,
        runtime: &dyn Runtime,
        pods: &[Pod],
    ) -> Result<String, StatsError> {
        let containers = runtime.list_containers(None).await?;
        let stats = runtime.list_container_stats(None).await?;
        let by_id: HashMap<&str, &api::Container> = containers
            .iter()
            .filter(|c| c.state == ContainerState::ContainerRunning as i32)
            .map(|c| (c.id.as_str(), c))
            .collect();
        let pod_of = |uid: &str| pods.iter().find(|p| p.metadata.uid.as_deref() == Some(uid));

        let mut cpu = FamilyText::new(
            "container_cpu_usage_seconds_total",
            "Cumulative cpu time consumed in seconds.",
            Kind::Counter,
        );
        let mut working_set = FamilyText::new(
            "container_memory_working_set_bytes",
            "Current working set in bytes.",
            Kind::Gauge,
        );
        let mut usage = FamilyText::new(
            "container_memory_usage_bytes",
            "Current memory usage in bytes, including all memory regardless of when it was accessed",
            Kind::Gauge,
        );
        let mut rss = FamilyText::new("container_memory_rss", "Size of RSS in bytes.", Kind::Gauge);
        let mut limit = FamilyText::new(
            "container_spec_memory_limit_bytes",
            "Memory limit for the container.",
            Kind::Gauge,
        );
        let mut last_seen = FamilyText::new(
            "container_last_seen",
            "Last time a container was seen by the exporter",
            Kind::Gauge,
        );
        let now = Timestamp::now();

        for s in &stats {
            let Some(container) = s.attributes.as_ref().and_then(|a| by_id.get(a.id.as_str()))
            else {
                continue;
            };
            let uid = label(&container.labels, POD_UID_LABEL);
            // cAdvisor names a container by its cgroup; without the pod there is no telling
            // where kuberuntime put it.
            let id = pod_of(&uid)
                .map(|pod| self.container_cgroup(pod, &container.id))
                .unwrap_or_default();
            let labels = || {
                vec![
                    ("container", label(&container.labels, CONTAINER_NAME_LABEL)),
                    ("id", id.clone()),
                    (
                        "image",
                        container
                            .image
                            .as_ref()
                            .map(|i| i.image.clone())
                            .unwrap_or_default(),
                    ),
                    ("name", container.id.clone()),
                    ("namespace", label(&container.labels, POD_NAMESPACE_LABEL)),
                    ("pod", label(&container.labels, POD_NAME_LABEL)),
                ]
            };
            if let Some(c) = &s.cpu
                && let Some(used) = &c.usage_core_nano_seconds
            {
                let mut cpu_labels = labels();
                cpu_labels.push(("cpu", "total".to_string()));
                cpu.push(
                    cpu_labels,
                    used.value as f64 / 1e9,
                    Some(Timestamp(c.timestamp).millis()),
                );
            }
            if let Some(m) = &s.memory {
                let at = Some(Timestamp(m.timestamp).millis());
                for (family, figure) in [
                    (&mut working_set, &m.working_set_bytes),
                    (&mut usage, &m.usage_bytes),
                    (&mut rss, &m.rss_bytes),
                ] {
                    if let Some(figure) = figure {
                        family.push(labels(), figure.value as f64, at);
                    }
                }
            }
            if let Some(bytes) = (!id.is_empty()).then(|| self.memory_limit(&id)).flatten() {
                limit.push(labels(), bytes as f64, None);
            }
            last_seen.push(labels(), now.0.div_euclid(1_000_000_000) as f64, None);
        }
        Ok(render(vec![cpu, working_set, usage, rss, limit, last_seen]))
    }
}
