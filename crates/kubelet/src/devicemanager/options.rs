//! A container's devices just before it is created: Allocate for what admission reserved
//! (asking GetPreferredAllocation first when the plugin offers it), PreStartContainer when the
//! plugin wants it, and the plugins' answers turned into the CRI config's part.

use super::DeviceManager;
use super::endpoint::Endpoint;
use k8s_openapi::api::core::v1::{Container, Pod};
use kubelet_cri::api::{CdiDevice, Device, KeyValue, Mount};
use kubelet_kuberuntime::device_options::DeviceOptions;
use kubelet_plugin_apis::deviceplugin::v1beta1::{
    AllocateRequest, ContainerAllocateRequest, ContainerAllocateResponse,
    ContainerPreferredAllocationRequest, PreStartContainerRequest, PreferredAllocationRequest,
};
use prost::Message;

fn endpoint(manager: &DeviceManager, resource: &str) -> Result<Endpoint, String> {
    manager
        .inner
        .endpoints
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(resource)
        .cloned()
        .ok_or_else(|| format!("cannot allocate unregistered device {resource}"))
}

/// The devices to give: the plugin's preference when it offers one and it is valid, else the
/// first free ones.
async fn choose(
    endpoint: &mut Endpoint,
    free: Vec<String>,
    count: usize,
) -> Result<Vec<String>, String> {
    if endpoint.options.get_preferred_allocation_available {
        let request = PreferredAllocationRequest {
            container_requests: vec![ContainerPreferredAllocationRequest {
                available_device_i_ds: free.clone(),
                must_include_device_i_ds: Vec::new(),
                allocation_size: count as i32,
            }],
        };
        let preferred = endpoint
            .client
            .get_preferred_allocation(request)
            .await
            .map_err(|e| format!("device plugin GetPreferredAllocation rpc failed with err: {e}"))?
            .into_inner();
        let ids: Vec<String> = preferred
            .container_responses
            .into_iter()
            .next()
            .map(|r| r.device_i_ds)
            .unwrap_or_default();
        if ids.len() == count && ids.iter().all(|id| free.contains(id)) {
            return Ok(ids);
        }
    }
    Ok(free.into_iter().take(count).collect())
}

async fn allocate(
    manager: &DeviceManager,
    uid: &str,
    container: &str,
    resource: &str,
    count: usize,
) -> Result<(), String> {
    let mut endpoint = endpoint(manager, resource)?;
    let (reusable, free) = {
        let state = manager.state();
        let reusable = state.reusable(uid, container, resource);
        (reusable, state.free_devices(resource))
    };
    // What the pod's init containers held goes first, as upstream reuses it.
    let mut ids: Vec<String> = reusable.into_iter().take(count).collect();
    let more = count - ids.len();
    if free.len() < more {
        return Err(format!(
            "requested number of devices unavailable for {resource}. Requested: {more}, Available: {}",
            free.len()
        ));
    }
    if more > 0 {
        ids.extend(choose(&mut endpoint, free, more).await?);
    }
    let request = AllocateRequest {
        container_requests: vec![ContainerAllocateRequest {
            devices_ids: ids.clone(),
        }],
    };
    let response = endpoint
        .client
        .allocate(request)
        .await
        .map_err(|e| format!("device plugin Allocate rpc failed with err: {e}"))?
        .into_inner();
    let [answer] = <[ContainerAllocateResponse; 1]>::try_from(response.container_responses)
        .map_err(|_| "AllocateResponse has incorrect number of ContainerAllocateResponses")?;
    tracing::info!(pod_uid = uid, container, resource, devices = ?ids, "allocated devices");
    let mut state = manager.state();
    state.allocated(uid, container, resource, &ids, answer.encode_to_vec());
    manager.save(&state);
    Ok(())
}

fn add_response(options: &mut DeviceOptions, r: ContainerAllocateResponse) {
    options.envs.extend(
        r.envs
            .into_iter()
            .map(|(key, value)| KeyValue { key, value }),
    );
    options.mounts.extend(r.mounts.into_iter().map(|m| Mount {
        container_path: m.container_path,
        host_path: m.host_path,
        readonly: m.read_only,
        ..Default::default()
    }));
    options
        .devices
        .extend(r.devices.into_iter().map(|d| Device {
            container_path: d.container_path,
            host_path: d.host_path,
            permissions: d.permissions,
        }));
    options.annotations.extend(r.annotations);
    options.cdi_devices.extend(
        r.cdi_devices
            .into_iter()
            .map(|c| CdiDevice { name: c.name }),
    );
}

pub async fn prepare(
    manager: &DeviceManager,
    pod: &Pod,
    container: &Container,
) -> Result<DeviceOptions, String> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let held = |manager: &DeviceManager| {
        manager
            .state()
            .pods
            .get(&uid)
            .and_then(|c| c.get(&container.name))
            .cloned()
            .unwrap_or_default()
    };
    if held(manager).is_empty() {
        return Ok(DeviceOptions::default());
    }
    {
        let _one_at_a_time = manager.inner.allocating.lock().await;
        for (resource, a) in held(manager) {
            if a.devices.is_none() {
                allocate(manager, &uid, &container.name, &resource, a.count).await?;
            }
        }
    }
    let mut options = DeviceOptions::default();
    for (resource, a) in held(manager) {
        if let Ok(mut endpoint) = endpoint(manager, &resource)
            && endpoint.options.pre_start_required
        {
            let request = PreStartContainerRequest {
                devices_ids: a.ids().into_iter().collect(),
            };
            endpoint
                .client
                .pre_start_container(request)
                .await
                .map_err(|e| format!("device plugin PreStartContainer rpc failed with err: {e}"))?;
        }
        let response = a.response.as_deref().unwrap_or_default();
        let decoded = ContainerAllocateResponse::decode(response)
            .map_err(|e| format!("cannot decode the allocation of {resource}: {e}"))?;
        add_response(&mut options, decoded);
    }
    Ok(options)
}
