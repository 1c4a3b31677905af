//! What the device manager knows, without I/O: each resource's devices and their health, and
//! which pod container holds which devices (upstream ManagerImpl's healthyDevices,
//! unhealthyDevices, podDevices and allocatedDevices).

use super::checkpoint::{CheckpointData, DevicesPerNuma, PodDevicesEntry};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

pub const HEALTHY: &str = "Healthy";

#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub healthy: bool,
    pub numa_nodes: Vec<i64>,
}

#[derive(Debug, Default)]
pub struct Resource {
    pub devices: BTreeMap<String, Device>,
    /// When its plugin went away; after the grace period its devices are forgotten.
    pub stopped_at: Option<Instant>,
}

/// One container's share of one resource: how many devices it was admitted for, and once
/// Allocate answered, which ones and the plugin's answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allocation {
    pub count: usize,
    /// Held by an init container that runs to completion: its devices pass on to the pod's
    /// later containers, as upstream's devicesToReuse (unknown after a restart: false).
    pub init: bool,
    pub devices: Option<DevicesPerNuma>,
    pub response: Option<Vec<u8>>,
}

impl Allocation {
    pub fn ids(&self) -> BTreeSet<String> {
        self.devices
            .iter()
            .flat_map(|m| m.values())
            .flatten()
            .flatten()
            .cloned()
            .collect()
    }
}

/// Container -> resource -> allocation.
pub type ContainerAllocations = BTreeMap<String, BTreeMap<String, Allocation>>;
/// Pod uid -> container -> resource -> allocation.
pub type PodAllocations = BTreeMap<String, ContainerAllocations>;

/// What one container asks for: device counts by resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerRequest {
    /// An init container that runs to completion before the next one starts.
    pub init: bool,
    pub resources: BTreeMap<String, usize>,
}

/// The devices of `resource` a pod's containers hold, all together.
fn held_ids(containers: &ContainerAllocations, resource: &str) -> BTreeSet<String> {
    containers
        .values()
        .filter_map(|r| r.get(resource))
        .flat_map(Allocation::ids)
        .collect()
}

/// How many devices of `resource` a pod needs at once: init containers run one at a time and
/// pass their devices on, so the pod needs the largest init request or the sum of the others,
/// whichever is more.
fn pod_demand(containers: &ContainerAllocations, resource: &str) -> usize {
    let (mut init, mut others) = (0, 0);
    for a in containers.values().filter_map(|r| r.get(resource)) {
        if a.init {
            init = init.max(a.count);
        } else {
            others += a.count;
        }
    }
    init.max(others)
}

/// Upstream's NUMA node id for devices that report no topology.
const NODE_WITHOUT_TOPOLOGY: i64 = -1;

#[derive(Debug, Default)]
pub struct State {
    pub resources: BTreeMap<String, Resource>,
    pub pods: PodAllocations,
}

/// Capacity and allocatable of one extended resource, in devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amounts {
    pub capacity: i64,
    pub allocatable: i64,
}

impl State {
    /// A ListAndWatch answer: the plugin's full list of devices.
    pub fn set_devices(&mut self, resource: &str, devices: BTreeMap<String, Device>) {
        let r = self.resources.entry(resource.to_string()).or_default();
        r.devices = devices;
        r.stopped_at = None;
    }

    /// The plugin's connection ended: its devices turn unhealthy at once.
    pub fn plugin_stopped(&mut self, resource: &str, now: Instant) {
        if let Some(r) = self.resources.get_mut(resource) {
            for d in r.devices.values_mut() {
                d.healthy = false;
            }
            r.stopped_at = Some(now);
        }
    }

    /// Forgets the devices of plugins gone longer than `grace`; their resource stays, at zero.
    pub fn expire(&mut self, now: Instant, grace: Duration) {
        for r in self.resources.values_mut() {
            if r.stopped_at
                .is_some_and(|at| now.duration_since(at) >= grace)
            {
                r.devices.clear();
            }
        }
    }

    /// Capacity counts every device the plugin listed, allocatable the healthy ones.
    pub fn amounts(&self) -> BTreeMap<String, Amounts> {
        self.resources
            .iter()
            .map(|(name, r)| {
                let healthy = r.devices.values().filter(|d| d.healthy).count();
                (
                    name.clone(),
                    Amounts {
                        capacity: r.devices.len() as i64,
                        allocatable: healthy as i64,
                    },
                )
            })
            .collect()
    }

    pub fn is_device_resource(&self, resource: &str) -> bool {
        self.resources.contains_key(resource)
    }

    /// Devices of `resource` held by pods other than `except_pod`, and how many more those
    /// pods were admitted for but have not been given yet.
    fn taken(&self, resource: &str, except_pod: Option<&str>) -> (BTreeSet<String>, usize) {
        let mut ids = BTreeSet::new();
        let mut pending = 0;
        for (uid, containers) in &self.pods {
            if Some(uid.as_str()) == except_pod {
                continue;
            }
            let held = held_ids(containers, resource);
            pending += pod_demand(containers, resource).saturating_sub(held.len());
            ids.extend(held);
        }
        (ids, pending)
    }

    /// Devices of the pod that `container` may take over (upstream devicesToReuse): those of
    /// its init containers, except, for an app container, those another app container took.
    pub fn reusable(&self, pod_uid: &str, container: &str, resource: &str) -> Vec<String> {
        let Some(containers) = self.pods.get(pod_uid) else {
            return Vec::new();
        };
        let others = containers
            .iter()
            .filter(|(name, _)| name.as_str() != container)
            .filter_map(|(_, r)| r.get(resource));
        let (init, apps): (Vec<&Allocation>, Vec<&Allocation>) = others.partition(|a| a.init);
        let mut pool: BTreeSet<String> = init.iter().flat_map(|a| a.ids()).collect();
        let this_is_init = containers
            .get(container)
            .and_then(|r| r.get(resource))
            .is_some_and(|a| a.init);
        if !this_is_init {
            for id in apps.iter().flat_map(|a| a.ids()) {
                pool.remove(&id);
            }
        }
        pool.into_iter().collect()
    }

    /// How many devices of each resource pods hold.
    pub fn held(&self) -> BTreeMap<String, i64> {
        self.resources
            .keys()
            .map(|r| (r.clone(), self.taken(r, None).0.len() as i64))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Healthy devices of `resource` no container holds.
    pub fn free_devices(&self, resource: &str) -> Vec<String> {
        let (taken, _) = self.taken(resource, None);
        self.resources
            .get(resource)
            .into_iter()
            .flat_map(|r| r.devices.iter())
            .filter(|(id, d)| d.healthy && !taken.contains(*id))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Forgets the allocations of pods not in `active` (upstream updateAllocatedDevices).
    /// Answers whether anything was freed.
    pub fn retain_pods(&mut self, active: &BTreeSet<String>) -> bool {
        let before = self.pods.len();
        self.pods.retain(|uid, _| active.contains(uid));
        before != self.pods.len()
    }

    /// Admission: reserves `wanted` (container -> request) for `pod_uid` unless some resource
    /// has too few free devices; then upstream's error text is the answer.
    pub fn reserve(
        &mut self,
        pod_uid: &str,
        wanted: &BTreeMap<String, ContainerRequest>,
    ) -> Result<(), String> {
        let mut after = self.pods.get(pod_uid).cloned().unwrap_or_default();
        let mut resources = BTreeSet::new();
        for (container, request) in wanted {
            for (resource, count) in &request.resources {
                if !self.is_device_resource(resource) {
                    continue;
                }
                let a = after
                    .entry(container.clone())
                    .or_default()
                    .entry(resource.clone())
                    .or_default();
                a.count = a.count.max(*count);
                a.init = request.init;
                resources.insert(resource.as_str());
            }
        }
        for resource in resources {
            let needed =
                pod_demand(&after, resource).saturating_sub(held_ids(&after, resource).len());
            if needed == 0 {
                continue;
            }
            let (taken, pending) = self.taken(resource, Some(pod_uid));
            let healthy = self.resources[resource]
                .devices
                .iter()
                .filter(|(id, d)| d.healthy && !taken.contains(*id))
                .count();
            let available = healthy.saturating_sub(pending);
            if available < needed {
                return Err(format!(
                    "requested number of devices unavailable for {resource}. Requested: {needed}, Available: {available}"
                ));
            }
        }
        if !after.is_empty() {
            self.pods.insert(pod_uid.to_string(), after);
        }
        Ok(())
    }

    /// Records Allocate's answer for the devices `ids` given to one container.
    pub fn allocated(
        &mut self,
        pod_uid: &str,
        container: &str,
        resource: &str,
        ids: &[String],
        response: Vec<u8>,
    ) {
        let mut per_numa = DevicesPerNuma::new();
        for id in ids {
            let nodes = self
                .resources
                .get(resource)
                .and_then(|r| r.devices.get(id))
                .map(|d| d.numa_nodes.clone())
                .unwrap_or_default();
            let nodes = if nodes.is_empty() {
                vec![NODE_WITHOUT_TOPOLOGY]
            } else {
                nodes
            };
            for n in nodes {
                per_numa
                    .entry(n)
                    .or_insert_with(|| Some(Vec::new()))
                    .get_or_insert_with(Vec::new)
                    .push(id.clone());
            }
        }
        let a = self
            .pods
            .entry(pod_uid.to_string())
            .or_default()
            .entry(container.to_string())
            .or_default()
            .entry(resource.to_string())
            .or_default();
        a.count = a.count.max(ids.len());
        a.devices = Some(per_numa);
        a.response = Some(response);
    }

    /// Upstream's checkpoint data: allocated containers, and each resource's healthy devices.
    pub fn checkpoint(&self) -> CheckpointData {
        let entries: Vec<PodDevicesEntry> = self
            .pods
            .iter()
            .flat_map(|(uid, containers)| {
                containers.iter().flat_map(move |(container, resources)| {
                    resources.iter().filter(|(_, a)| a.response.is_some()).map(
                        move |(resource, a)| PodDevicesEntry {
                            pod_uid: uid.clone(),
                            container_name: container.clone(),
                            resource_name: resource.clone(),
                            device_ids: a.devices.clone(),
                            alloc_resp: a.response.clone(),
                        },
                    )
                })
            })
            .collect();
        let registered = self
            .resources
            .iter()
            .map(|(name, r)| {
                let ids = r
                    .devices
                    .iter()
                    .filter(|(_, d)| d.healthy)
                    .map(|(id, _)| id.clone())
                    .collect();
                (name.clone(), Some(ids))
            })
            .collect();
        CheckpointData {
            // Go's nil slice when nothing is allocated, as upstream writes it.
            pod_device_entries: (!entries.is_empty()).then_some(entries),
            registered_devices: Some(registered),
        }
    }

    /// Restores allocations from a checkpoint; the resources it names are known but have no
    /// devices until their plugins register again.
    pub fn restore(&mut self, data: CheckpointData) {
        for e in data.pod_device_entries.into_iter().flatten() {
            let devices = e.device_ids.unwrap_or_default();
            let count = devices.values().flatten().flatten().count();
            let a = Allocation {
                count,
                init: false,
                devices: Some(devices),
                response: e.alloc_resp,
            };
            self.pods
                .entry(e.pod_uid)
                .or_default()
                .entry(e.container_name)
                .or_default()
                .insert(e.resource_name, a);
        }
        for resource in data
            .registered_devices
            .into_iter()
            .flatten()
            .map(|(r, _)| r)
        {
            self.resources.entry(resource).or_default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices(n: usize) -> BTreeMap<String, Device> {
        (0..n)
            .map(|i| {
                (
                    format!("dev-{i}"),
                    Device {
                        healthy: true,
                        numa_nodes: Vec::new(),
                    },
                )
            })
            .collect()
    }

    fn want(container: &str, resource: &str, n: usize) -> BTreeMap<String, ContainerRequest> {
        BTreeMap::from([(
            container.to_string(),
            ContainerRequest {
                init: false,
                resources: BTreeMap::from([(resource.to_string(), n)]),
            },
        )])
    }

    fn init(mut wanted: BTreeMap<String, ContainerRequest>) -> BTreeMap<String, ContainerRequest> {
        wanted.values_mut().for_each(|r| r.init = true);
        wanted
    }

    const R: &str = "example.com/dev";

    #[test]
    fn admission_counts_reservations_and_allocations() {
        let mut s = State::default();
        s.set_devices(R, devices(2));
        s.reserve("a", &want("c", R, 1)).unwrap();
        s.allocated("a", "c", R, &["dev-1".into()], vec![1]);
        s.reserve("b", &want("c", R, 1)).unwrap();
        assert_eq!(
            s.reserve("c", &want("c", R, 1)).unwrap_err(),
            "requested number of devices unavailable for example.com/dev. Requested: 1, Available: 0"
        );
        // Asking again for what a pod holds needs nothing more.
        s.reserve("a", &want("c", R, 1)).unwrap();
        assert_eq!(s.free_devices(R), vec!["dev-0".to_string()]);
        assert!(s.retain_pods(&BTreeSet::from(["b".to_string()])));
        assert_eq!(s.free_devices(R).len(), 2);
    }

    #[test]
    fn init_containers_pass_their_devices_on() {
        let mut s = State::default();
        s.set_devices(R, devices(1));
        // One device serves an init container, then the app container.
        let mut pod = init(want("setup", R, 1));
        pod.extend(want("app", R, 1));
        s.reserve("a", &pod).unwrap();
        assert_eq!(s.reusable("a", "setup", R), Vec::<String>::new());
        s.allocated("a", "setup", R, &["dev-0".into()], vec![1]);
        assert_eq!(s.reusable("a", "app", R), ["dev-0"]);
        s.allocated("a", "app", R, &["dev-0".into()], vec![1]);
        assert_eq!(
            s.reserve("b", &want("c", R, 1)).unwrap_err(),
            "requested number of devices unavailable for example.com/dev. Requested: 1, Available: 0"
        );
        // Two app containers never share one.
        let mut s = State::default();
        s.set_devices(R, devices(1));
        let mut pod = want("one", R, 1);
        pod.extend(want("two", R, 1));
        assert_eq!(
            s.reserve("a", &pod).unwrap_err(),
            "requested number of devices unavailable for example.com/dev. Requested: 2, Available: 1"
        );
        // An admitted pod whose devices are not given yet counts as their demand, once.
        let mut s = State::default();
        s.set_devices(R, devices(2));
        let mut pod = init(want("setup", R, 2));
        pod.extend(want("app", R, 1));
        s.reserve("a", &pod).unwrap();
        assert!(s.reserve("b", &want("c", R, 1)).is_err());
    }

    #[test]
    fn unknown_resources_are_not_the_device_managers() {
        let mut s = State::default();
        s.reserve("a", &want("c", "example.com/other", 3)).unwrap();
        assert!(s.pods.is_empty());
    }

    #[test]
    fn plugin_death_zeroes_allocatable_then_capacity() {
        let mut s = State::default();
        s.set_devices(R, devices(2));
        let t0 = Instant::now();
        s.plugin_stopped(R, t0);
        assert_eq!(
            s.amounts()[R],
            Amounts {
                capacity: 2,
                allocatable: 0
            }
        );
        s.expire(t0 + Duration::from_secs(1), Duration::from_secs(300));
        assert_eq!(s.amounts()[R].capacity, 2);
        s.expire(t0 + Duration::from_secs(300), Duration::from_secs(300));
        assert_eq!(
            s.amounts()[R],
            Amounts {
                capacity: 0,
                allocatable: 0
            }
        );
    }

    #[test]
    fn checkpoint_round_trip_keeps_allocations() {
        let mut s = State::default();
        s.set_devices(R, devices(2));
        s.reserve("a", &want("c", R, 1)).unwrap();
        s.allocated("a", "c", R, &["dev-0".into()], vec![7]);
        let data = s.checkpoint();
        assert_eq!(
            data.registered_devices.as_ref().unwrap()[R]
                .as_ref()
                .unwrap()
                .len(),
            2
        );
        let mut restored = State::default();
        restored.restore(data);
        assert_eq!(restored.pods, s.pods);
        assert!(restored.is_device_resource(R));
        assert!(
            State::default().checkpoint().pod_device_entries.is_none(),
            "nothing allocated is Go's nil slice"
        );
    }
}
