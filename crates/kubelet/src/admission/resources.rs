//! Resource amounts as the scheduler's noderesources fit counts them: a pod's effective request
//! (upstream component-helpers resource.PodRequests) and the node's allocatable.

use crate::cm::machine::MachineInfo;
use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

pub const CPU: &str = "cpu";
pub const MEMORY: &str = "memory";
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
pub const PODS: &str = "pods";

/// Amounts by resource name: millicores for cpu, `Quantity.Value()` for everything else.
pub type Amounts = BTreeMap<String, i64>;

fn amount(name: &str, q: &Quantity) -> i64 {
    // An unparsable quantity counts as none: the source validated the pod.
    let v = if name == CPU {
        kubelet_quantity::milli_value(&q.0)
    } else {
        kubelet_quantity::value(&q.0)
    };
    v.unwrap_or(0)
}

fn amounts(list: Option<&BTreeMap<String, Quantity>>) -> Amounts {
    list.into_iter()
        .flatten()
        .map(|(name, q)| (name.clone(), amount(name, q)))
        .collect()
}

fn add(into: &mut Amounts, from: &Amounts) {
    for (name, v) in from {
        *into.entry(name.clone()).or_default() += v;
    }
}

fn max(into: &mut Amounts, from: &Amounts) {
    for (name, v) in from {
        let e = into.entry(name.clone()).or_default();
        *e = (*e).max(*v);
    }
}

fn requests(c: &Container) -> Amounts {
    amounts(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Extended resources (upstream IsExtendedResourceName): a domain-qualified name outside the
/// kubernetes.io namespace.
pub fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

/// Resources the scheduler counts besides cpu, memory and ephemeral storage (upstream
/// IsScalarResourceName).
fn is_scalar(name: &str) -> bool {
    is_extended(name)
        || name.starts_with("hugepages-")
        || name.contains("kubernetes.io/")
        || name.starts_with("attachable-volumes-")
}

/// Resources a pod-level `spec.resources` may set (upstream IsSupportedPodLevelResource).
fn pod_level(name: &str) -> bool {
    name == CPU || name == MEMORY || name.starts_with("hugepages-")
}

/// The pod's effective request: the sum of its containers and sidecars, or the largest init
/// container (plus the sidecars started before it) when that is larger; pod-level requests
/// replace the containers' figures; the pod overhead comes on top.
pub fn pod_requests(pod: &Pod) -> Amounts {
    let Some(spec) = pod.spec.as_ref() else {
        return Amounts::new();
    };
    let mut sum = Amounts::new();
    for c in &spec.containers {
        add(&mut sum, &requests(c));
    }
    let mut sidecars = Amounts::new();
    let mut init = Amounts::new();
    for c in spec.init_containers.iter().flatten() {
        let own = requests(c);
        let running = if is_sidecar(c) {
            add(&mut sum, &own);
            add(&mut sidecars, &own);
            sidecars.clone()
        } else {
            let mut with_sidecars = own;
            add(&mut with_sidecars, &sidecars);
            with_sidecars
        };
        max(&mut init, &running);
    }
    max(&mut sum, &init);
    let pod_level_requests = spec.resources.as_ref().and_then(|r| r.requests.as_ref());
    for (name, v) in amounts(pod_level_requests) {
        if pod_level(&name) {
            sum.insert(name, v);
        }
    }
    add(&mut sum, &amounts(spec.overhead.as_ref()));
    sum
}

/// What the node offers pods, and which resources admission checks against it.
pub struct Allocatable {
    amounts: Amounts,
    /// From a Node's status: every requested resource is checked (a missing one has none).
    /// From the machine (standalone): only cpu, memory and pods are known.
    from_node: bool,
}

impl Allocatable {
    /// The Node's `status.allocatable`; `None` when the Node reports none yet.
    pub fn of_node(node: &Node) -> Option<Self> {
        let list = node.status.as_ref()?.allocatable.as_ref()?;
        Some(Self {
            amounts: amounts(Some(list)),
            from_node: true,
        })
    }

    pub fn of_machine(machine: &MachineInfo, max_pods: u32) -> Self {
        let amounts = [
            (CPU, machine.cpu_milli),
            (MEMORY, machine.memory_bytes),
            (PODS, u64::from(max_pods)),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), i64::try_from(v).unwrap_or(i64::MAX)))
        .collect();
        Self {
            amounts,
            from_node: false,
        }
    }

    /// Raises each named amount to at least the given figure.
    pub fn at_least(mut self, floors: &Amounts) -> Self {
        for (name, floor) in floors {
            let v = self.amounts.entry(name.clone()).or_insert(0);
            *v = (*v).max(*floor);
        }
        self
    }

    fn get(&self, name: &str) -> i64 {
        self.amounts.get(name).copied().unwrap_or(0)
    }

    fn has(&self, name: &str) -> bool {
        self.amounts.contains_key(name)
    }
}

/// A resource the pod does not fit in (upstream InsufficientResourceError).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insufficient {
    pub resource: String,
    pub requested: i64,
    pub used: i64,
    pub capacity: i64,
}

/// The resources `pod` does not fit in beside `others`, in upstream's order: pods, cpu,
/// memory, ephemeral storage, then the scalar resources.
pub fn insufficient(pod: &Pod, others: &[&Pod], node: &Allocatable) -> Vec<Insufficient> {
    let mut out = Vec::new();
    let allowed_pods = node.get(PODS);
    if others.len() as i64 + 1 > allowed_pods {
        out.push(Insufficient {
            resource: PODS.into(),
            requested: 1,
            used: others.len() as i64,
            capacity: allowed_pods,
        });
    }
    let mut want = pod_requests(pod);
    // Extended resources the node does not know are cluster-level or DRA-backed: upstream
    // drops them before the fit check.
    want.retain(|name, v| *v > 0 && (!is_extended(name) || node.has(name)));
    let mut used = Amounts::new();
    for other in others {
        add(&mut used, &pod_requests(other));
    }
    let named = [CPU, MEMORY, EPHEMERAL_STORAGE];
    let checked = named
        .iter()
        .map(|n| n.to_string())
        .chain(want.keys().filter(|n| is_scalar(n)).cloned())
        .filter(|n| node.from_node || node.has(n));
    for name in checked {
        let Some(&requested) = want.get(&name) else {
            continue;
        };
        let in_use = used.get(&name).copied().unwrap_or(0);
        let capacity = node.get(&name);
        if requested > capacity - in_use {
            out.push(Insufficient {
                resource: name,
                requested,
                used: in_use,
                capacity,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    fn c(name: &str, cpu: &str) -> serde_json::Value {
        json!({"name": name, "image": "i", "resources": {"requests": {"cpu": cpu}}})
    }

    #[test]
    fn effective_request_takes_the_larger_of_init_and_app_containers() {
        let p = pod(json!({
            "containers": [c("a", "100m"), c("b", "200m")],
            "initContainers": [c("i1", "500m"), c("i2", "100m")],
        }));
        assert_eq!(pod_requests(&p)[CPU], 500);
        let p = pod(json!({
            "containers": [c("a", "400m"), c("b", "200m")],
            "initContainers": [c("i1", "500m")],
        }));
        assert_eq!(pod_requests(&p)[CPU], 600);
    }

    #[test]
    fn sidecars_add_to_the_containers_and_to_later_init_containers() {
        let mut sidecar = c("s", "300m");
        sidecar["restartPolicy"] = json!("Always");
        let p = pod(json!({
            "containers": [c("a", "100m")],
            "initContainers": [sidecar, c("after", "500m")],
        }));
        // Running: 100m + 300m = 400m; the init container after the sidecar: 500m + 300m.
        assert_eq!(pod_requests(&p)[CPU], 800);
    }

    #[test]
    fn overhead_and_pod_level_requests() {
        let p = pod(json!({
            "containers": [c("a", "100m")],
            "overhead": {"cpu": "50m", "memory": "10Mi"},
        }));
        let r = pod_requests(&p);
        assert_eq!((r[CPU], r[MEMORY]), (150, 10 << 20));
        let p = pod(json!({
            "containers": [c("a", "100m")],
            "resources": {"requests": {"cpu": "1", "ephemeral-storage": "1Gi"}},
        }));
        assert_eq!(pod_requests(&p)[CPU], 1000);
        assert!(!pod_requests(&p).contains_key(EPHEMERAL_STORAGE));
    }

    #[test]
    fn extended_resource_names() {
        assert!(is_extended("example.com/gpu"));
        assert!(!is_extended("kubernetes.io/foo"));
        assert!(!is_extended("hugepages-2Mi"));
        assert!(is_scalar("hugepages-2Mi"));
        assert!(!is_scalar("cpu"));
    }
}
