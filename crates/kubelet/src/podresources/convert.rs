//! Pods and their devices as the pod-resources messages carry them.

use crate::cm::cpumanager::CpuManager;
use crate::devicemanager::{ContainerDevices, DeviceManager};
use k8s_openapi::api::core::v1::Pod;
use kubelet_plugin_apis::podresources::{v1, v1alpha1};

pub fn devices(devices: Vec<ContainerDevices>) -> Vec<v1::ContainerDevices> {
    devices
        .into_iter()
        .map(|d| v1::ContainerDevices {
            resource_name: d.resource,
            device_ids: d.ids,
            topology: (!d.numa_nodes.is_empty()).then(|| v1::TopologyInfo {
                nodes: d
                    .numa_nodes
                    .into_iter()
                    .map(|id| v1::NumaNode { id })
                    .collect(),
            }),
        })
        .collect()
}

/// The pod's containers (restartable init containers, i.e. sidecars, included, as upstream)
/// with their devices and exclusive CPUs. Memory stays empty: there is no memory manager.
pub fn pod_resources(pod: &Pod, manager: &DeviceManager, cpus: &CpuManager) -> v1::PodResources {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let sidecars = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let containers = sidecars
        .chain(spec.map(|s| s.containers.iter()).into_iter().flatten())
        .map(|c| v1::ContainerResources {
            name: c.name.clone(),
            devices: devices(manager.container_devices(&uid, &c.name)),
            cpu_ids: cpus
                .cpus(&uid, &c.name)
                .map(|set| set.iter().map(i64::from).collect())
                .unwrap_or_default(),
            ..Default::default()
        })
        .collect();
    v1::PodResources {
        name: pod.metadata.name.clone().unwrap_or_default(),
        namespace: pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        containers,
    }
}

pub fn v1alpha1(pod: v1::PodResources) -> v1alpha1::PodResources {
    v1alpha1::PodResources {
        name: pod.name,
        namespace: pod.namespace,
        containers: pod
            .containers
            .into_iter()
            .map(|c| v1alpha1::ContainerResources {
                name: c.name,
                devices: c
                    .devices
                    .into_iter()
                    .map(|d| v1alpha1::ContainerDevices {
                        resource_name: d.resource_name,
                        device_ids: d.device_ids,
                    })
                    .collect(),
            })
            .collect(),
    }
}
