//! The CPU manager's running part (upstream cpu_manager.go): it answers the cpuset of each new
//! container, keeps the checkpoint current, and on every reconcile period (and whenever the
//! assignments change) releases the CPUs of pods that are gone and pushes each running
//! container's CPUs (its own, or the shared pool) through UpdateContainerResources.

use super::cpuset::{CpuSet, ParseCpuSetError};
use super::options::{OptionsError, StaticPolicyOptions};
use super::policy::{self, PolicyError, StaticPolicy};
use super::state::CpuState;
use super::state::checkpoint::{self, CheckpointError};
use super::topology::{CpuTopology, TopologyError};
use crate::pod_manager::PodManager;
use crate::podresources::ActivePods;
use k8s_openapi::api::core::v1::{Container as PodContainer, Pod};
use kubelet_config::{CpuManagerPolicy, KubeletConfig};
use kubelet_cri::api::{
    Container, ContainerFilter, ContainerState, ContainerStateValue, LinuxContainerResources,
};
use kubelet_cri::{CriError, Runtime};
use kubelet_kuberuntime::container_cpus::ContainerCpus;
use kubelet_kuberuntime::labels::{CONTAINER_NAME_LABEL, POD_UID_LABEL};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::Notify;
use tracing::{info, warn};

#[derive(Debug, Error)]
pub enum CpuManagerError {
    #[error(transparent)]
    Options(#[from] OptionsError),
    #[error("cannot read the CPU topology: {0}")]
    Topology(#[from] TopologyError),
    #[error("reservedSystemCPUs (--reserved-cpus): {0}")]
    ReservedCpus(ParseCpuSetError),
    #[error("{setting}: cpu {value:?} is not a quantity")]
    Reservation {
        setting: &'static str,
        value: String,
    },
    #[error(
        "[cpumanager] the static policy requires systemreserved.cpu + kubereserved.cpu to be greater than zero"
    )]
    NoReservation,
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// Upstream's --reserved-cpus handling (cmd/kubelet/app/server.go): the listed CPUs replace
/// the cpu of kubeReserved and systemReserved, so node allocatable subtracts exactly them.
pub fn apply_reserved_cpus(cfg: &mut KubeletConfig) -> Result<(), CpuManagerError> {
    let reserved: CpuSet = cfg
        .cpu_manager
        .reserved_cpus
        .parse()
        .map_err(CpuManagerError::ReservedCpus)?;
    if !reserved.is_empty() {
        info!(cpus = %reserved, "--reserved-cpus is set: it overrides the cpu of kubeReserved and systemReserved");
        cfg.kube_reserved.remove("cpu");
        cfg.system_reserved
            .insert("cpu".into(), reserved.len().to_string());
    }
    Ok(())
}

/// The whole CPUs the static policy keeps for the system: ceil(kube + system reserved cpu).
fn reserved_cpu_count(cfg: &KubeletConfig) -> Result<usize, CpuManagerError> {
    let mut milli = 0i64;
    for (setting, map) in [
        ("kubeReserved (--kube-reserved)", &cfg.kube_reserved),
        ("systemReserved (--system-reserved)", &cfg.system_reserved),
    ] {
        if let Some(value) = map.get("cpu") {
            milli +=
                kubelet_quantity::milli_value(value).map_err(|_| CpuManagerError::Reservation {
                    setting,
                    value: value.clone(),
                })?;
        }
    }
    Ok(usize::try_from((milli.max(0) + 999) / 1000).unwrap_or(0))
}

struct Inner {
    state: CpuState,
    /// None for the none policy: nothing is assigned, the runtime's default applies.
    policy: Option<StaticPolicy>,
    /// The cpuset last pushed to each running container, by container id.
    pushed: HashMap<String, CpuSet>,
}

pub struct CpuManager {
    policy_name: &'static str,
    checkpoint: PathBuf,
    reconcile_period: Duration,
    inner: Mutex<Inner>,
    changed: Notify,
}

impl CpuManager {
    /// Reads the machine's topology from /sys (for the static policy) and starts.
    pub fn start(cfg: &KubeletConfig) -> Result<Self, CpuManagerError> {
        let topology = match cfg.cpu_manager.policy {
            CpuManagerPolicy::Static => Some(CpuTopology::discover(Path::new("/sys"))?),
            CpuManagerPolicy::None => None,
        };
        Self::with_topology(cfg, topology)
    }

    /// `NewManager` and `Start`: the policy, the checkpoint restored (or created) and checked.
    pub fn with_topology(
        cfg: &KubeletConfig,
        topology: Option<CpuTopology>,
    ) -> Result<Self, CpuManagerError> {
        let cm = &cfg.cpu_manager;
        let (policy_name, policy) = match (cm.policy, topology) {
            (CpuManagerPolicy::Static, Some(topology)) => {
                let options = StaticPolicyOptions::parse(&cm.policy_options)?;
                let reserved: CpuSet = cm
                    .reserved_cpus
                    .parse()
                    .map_err(CpuManagerError::ReservedCpus)?;
                let count = if reserved.is_empty() {
                    reserved_cpu_count(cfg)?
                } else {
                    reserved.len()
                };
                if count == 0 {
                    return Err(CpuManagerError::NoReservation);
                }
                info!(topology = ?topology, "detected CPU topology");
                let policy = StaticPolicy::new(topology, count, Some(reserved), options)?;
                info!(reserved = %policy.reserved(), ?options, "static CPU manager policy");
                (policy::STATIC, Some(policy))
            }
            _ => {
                if !cm.policy_options.is_empty() {
                    return Err(OptionsError::NonePolicy(cm.policy_options.clone()).into());
                }
                (policy::NONE, None)
            }
        };
        let path = cfg.root_dir.join(checkpoint::FILE_NAME);
        let mut state = checkpoint::restore(&path, policy_name)?.unwrap_or_default();
        if let Some(policy) = &policy {
            policy.start(&mut state)?;
        }
        std::fs::create_dir_all(&cfg.root_dir).map_err(|source| CheckpointError::Write {
            path: path.clone(),
            source,
        })?;
        checkpoint::store(&path, policy_name, &state)?;
        info!(policy = policy_name, reconcile_period = ?cm.reconcile_period, "CPU manager started");
        Ok(CpuManager {
            policy_name,
            checkpoint: path,
            reconcile_period: cm.reconcile_period,
            inner: Mutex::new(Inner {
                state,
                policy,
                pushed: HashMap::new(),
            }),
            changed: Notify::new(),
        })
    }

    /// The container's exclusive CPUs, if it has any (for the pod resources API).
    pub fn cpus(&self, pod_uid: &str, container: &str) -> Option<CpuSet> {
        self.lock().state.get(pod_uid, container).cloned()
    }

    /// Allocation at admission, as upstream's topology manager scope does it with the none
    /// policy: each init container, then each app container, in order, so that app containers
    /// may reuse what init containers got. A container that cannot get its CPUs refuses the
    /// pod, and what this call assigned is released again.
    pub fn admit(&self, pod: &Pod) -> Result<(), PolicyError> {
        let mut inner = self.lock();
        let Inner { state, policy, .. } = &mut *inner;
        let (Some(policy), Some(spec)) = (policy, &pod.spec) else {
            return Ok(());
        };
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let mut assigned = Vec::new();
        for container in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            match policy.allocate(state, pod, container) {
                Ok(true) => assigned.push(container.name.as_str()),
                Ok(false) => {}
                Err(e) => {
                    for name in assigned {
                        policy.remove_container(state, uid, name);
                    }
                    return Err(e);
                }
            }
        }
        for name in &assigned {
            info!(
                pod_uid = %uid,
                namespace = pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod = pod.metadata.name.as_deref().unwrap_or_default(),
                container = %name,
                cpus = ?state.get(uid, name).map(ToString::to_string),
                "assigned exclusive CPUs"
            );
        }
        if !assigned.is_empty() {
            self.store(state);
            // The shared pool shrank: every other container is told at once.
            self.changed.notify_one();
        }
        Ok(())
    }

    /// The shared pool.
    pub fn shared_cpus(&self) -> CpuSet {
        self.lock().state.default.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store(&self, state: &CpuState) {
        if let Err(e) = checkpoint::store(&self.checkpoint, self.policy_name, state) {
            warn!("{e}");
        }
    }

    /// `removeStaleState`: releases the CPUs of every container whose pod is not active or
    /// whose spec no longer has it, unless the container still runs (a pod being stopped keeps
    /// its CPUs until its containers are gone). Returns whether anything was released.
    pub fn remove_stale(&self, active: &[Pod], running: &HashSet<(String, String)>) -> bool {
        let mut wanted: HashMap<&str, HashSet<&str>> = HashMap::new();
        for pod in active {
            let uid = pod.metadata.uid.as_deref().unwrap_or_default();
            let names = wanted.entry(uid).or_default();
            if let Some(spec) = &pod.spec {
                let inits = spec.init_containers.iter().flatten();
                names.extend(inits.chain(&spec.containers).map(|c| c.name.as_str()));
            }
        }
        let mut inner = self.lock();
        let Inner { state, policy, .. } = &mut *inner;
        let Some(policy) = policy else {
            return false;
        };
        let stale: Vec<(String, String)> = state
            .assignments
            .iter()
            .flat_map(|(pod, containers)| containers.keys().map(move |c| (pod.clone(), c.clone())))
            .filter(|(pod, c)| {
                !wanted
                    .get(pod.as_str())
                    .is_some_and(|n| n.contains(c.as_str()))
            })
            .filter(|key| !running.contains(key))
            .collect();
        for (pod, container) in &stale {
            info!(pod_uid = %pod, container = %container, "releasing the CPUs of a container that is gone");
            policy.remove_container(state, pod, container);
        }
        if !stale.is_empty() {
            self.store(state);
        }
        !stale.is_empty()
    }

    /// Every reconcile period, and at once when the assignments change: releases stale
    /// assignments and brings each running container of an active pod to its CPUs. Nothing is
    /// released before every pod source has been read, as upstream: until then a pod missing
    /// from the active ones may only not be known yet.
    pub async fn run(
        self: Arc<Self>,
        runtime: Arc<dyn Runtime>,
        active_pods: ActivePods,
        pods: PodManager,
    ) {
        if self.lock().policy.is_none() {
            return;
        }
        loop {
            match running_containers(runtime.as_ref()).await {
                Ok(containers) => {
                    let active = active_pods();
                    if pods.sources_ready() {
                        let running = containers.iter().filter_map(pod_and_name).collect();
                        self.remove_stale(&active, &running);
                    }
                    self.reconcile(runtime.as_ref(), &active, &containers).await;
                }
                Err(e) => warn!("CPU manager reconcile: cannot list the running containers: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.reconcile_period) => {}
                _ = self.changed.notified() => {}
            }
        }
    }

    /// `reconcileState`: UpdateContainerResources for each of the running `containers` of an
    /// active pod whose CPUs differ from what it was last given.
    pub async fn reconcile(&self, runtime: &dyn Runtime, active: &[Pod], containers: &[Container]) {
        let active: HashSet<&str> = active
            .iter()
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        let mut updates = Vec::new();
        {
            let mut inner = self.lock();
            let running: HashSet<&str> = containers.iter().map(|c| c.id.as_str()).collect();
            inner.pushed.retain(|id, _| running.contains(id.as_str()));
            for c in containers {
                let Some((uid, name)) = pod_and_name(c) else {
                    continue;
                };
                if !active.contains(uid.as_str()) {
                    continue;
                }
                let cpus = inner.state.cpuset_or_default(&uid, &name);
                if cpus.is_empty() || inner.pushed.get(&c.id) == Some(&cpus) {
                    continue;
                }
                updates.push((c.id.clone(), uid, name, cpus));
            }
        }
        for (id, uid, name, cpus) in updates {
            let resources = LinuxContainerResources {
                cpuset_cpus: cpus.to_string(),
                ..Default::default()
            };
            match runtime.update_container_resources(&id, resources).await {
                Ok(()) => {
                    info!(pod_uid = %uid, container = %name, cpus = %cpus, "updated the container's CPU set");
                    self.lock().pushed.insert(id, cpus);
                }
                Err(e) => {
                    warn!(pod_uid = %uid, container = %name, "cannot update the container's CPU set: {e}")
                }
            }
        }
    }
}

pub(crate) async fn running_containers(runtime: &dyn Runtime) -> Result<Vec<Container>, CriError> {
    let filter = ContainerFilter {
        state: Some(ContainerStateValue {
            state: ContainerState::ContainerRunning as i32,
        }),
        ..Default::default()
    };
    runtime.list_containers(Some(filter)).await
}

/// The pod UID and container name a kubelet-made container carries in its labels.
fn pod_and_name(c: &Container) -> Option<(String, String)> {
    Some((
        c.labels.get(POD_UID_LABEL)?.clone(),
        c.labels.get(CONTAINER_NAME_LABEL)?.clone(),
    ))
}

impl ContainerCpus for CpuManager {
    /// The CPUs [`CpuManager::admit`] assigned; allocating again here is idempotent, and gives
    /// a container of a pod admitted before a restart its CPUs if the checkpoint lacks them.
    fn cpuset(&self, pod: &Pod, container: &PodContainer) -> Result<Option<String>, String> {
        let mut inner = self.lock();
        let Inner { state, policy, .. } = &mut *inner;
        let Some(policy) = policy else {
            return Ok(None);
        };
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let changed = policy
            .allocate(state, pod, container)
            .map_err(|e| e.to_string())?;
        if changed {
            info!(
                pod_uid = %uid,
                namespace = pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod = pod.metadata.name.as_deref().unwrap_or_default(),
                container = %container.name,
                cpus = ?state.get(uid, &container.name).map(ToString::to_string),
                "assigned exclusive CPUs"
            );
            self.store(state);
            // The shared pool shrank: every other container is told at once.
            self.changed.notify_one();
        }
        let cpus = state.cpuset_or_default(uid, &container.name);
        Ok((!cpus.is_empty()).then(|| cpus.to_string()))
    }
}

#[cfg(test)]
mod tests;
