//! One sync of a pod (upstream SyncPod): compute the actions, then kill, create the sandbox, start
//! the next init container or the app containers. Every failure is a waiting reason for that
//! container alone.

use crate::actions::{PodActions, ProbeResults, compute_pod_actions, is_sidecar};
use crate::container_config::env::{
    INVALID_ENVIRONMENT_VARIABLE_NAMES, environment, invalid_env_from_keys,
};
use crate::container_config::env_sources::EnvSources;
use crate::container_config::{ContainerInput, container_config, mounts};
use crate::container_cpus;
use crate::ephemeral;
use crate::events::{EventType, reason};
use crate::go_duration::go_duration;
use crate::hash::container_hash;
use crate::hooks::{FAILED_POST_START_HOOK, POST_START_HOOK_ERROR};
use crate::manager::RuntimeManager;
use crate::runtime_status::{ContainerState, PodRuntimeStatus};
use crate::sandbox_config::pod_sandbox_config;
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, Secret};
use kubelet_cri::CriError;
use kubelet_cri::api::PodSandboxConfig;
use kubelet_volumes::PodVolumes;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// Waiting reasons of containers that could not be started (upstream kubecontainer errors).
pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
pub const CREATE_CONTAINER_ERROR: &str = "CreateContainerError";
pub const RUN_CONTAINER_ERROR: &str = "RunContainerError";
pub const CREATE_POD_SANDBOX_ERROR: &str = "CreatePodSandboxError";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

/// The event reason for image pull Secrets that could not be read.
pub const FAILED_TO_RETRIEVE_IMAGE_PULL_SECRET: &str = "FailedToRetrieveImagePullSecret";

/// The sandbox containers start in, and the pod's image pull Secrets.
struct Sandbox {
    id: String,
    config: PodSandboxConfig,
    ips: Vec<String>,
    pull_secrets: Vec<Secret>,
}

/// What a sync did not manage, per container name, and when it is worth trying again.
#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    pub waiting: BTreeMap<String, Waiting>,
    /// A pod-level failure (the sandbox could not be made).
    pub pod_error: Option<Waiting>,
    /// The earliest moment a back-off ends, if a container waits for one.
    pub retry_after: Option<Duration>,
    /// A new sandbox was made (kubelet_started_pods_total).
    pub sandbox_created: bool,
    /// Time spent ensuring images, which the pod start SLI leaves out.
    pub image_time: Duration,
}

impl SyncResult {
    fn wait(&mut self, container: &str, reason: &str, message: String) {
        self.waiting.insert(
            container.to_string(),
            Waiting {
                reason: reason.to_string(),
                message,
            },
        );
    }

    fn retry_in(&mut self, d: Duration) {
        self.retry_after = Some(self.retry_after.map_or(d, |r| r.min(d)));
    }

    pub fn is_ok(&self) -> bool {
        self.waiting.is_empty() && self.pod_error.is_none()
    }
}

fn pod_key(pod: &Pod) -> (String, String, String) {
    (
        pod.metadata.name.clone().unwrap_or_default(),
        pod.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        pod.metadata.uid.clone().unwrap_or_default(),
    )
}

impl RuntimeManager {
    /// Brings the pod's sandbox and containers in line with its spec.
    pub async fn sync_pod(
        &self,
        pod: &Pod,
        volumes: &PodVolumes,
        probes: &dyn ProbeResults,
    ) -> Result<SyncResult, CriError> {
        let (name, ns, uid) = pod_key(pod);
        let status = self.pod_status(&uid, &name, &ns).await?;
        let actions = compute_pod_actions(pod, &status, probes);
        tracing::debug!(pod_uid = %uid, ?actions, "computed pod actions");
        let mut result = SyncResult::default();

        if actions.kill_pod {
            if status.sandbox().is_some() && actions.create_sandbox {
                self.events.event(
                    pod,
                    EventType::Normal,
                    reason::SANDBOX_CHANGED,
                    "Pod sandbox changed, it will be killed and re-created.",
                );
            }
            self.kill_pod_containers(Some(pod), &status, None).await?;
            if !actions.create_sandbox {
                return Ok(result);
            }
        } else {
            for (id, kill) in &actions.containers_to_kill {
                if let Some(c) = status.containers.iter().find(|c| &c.id == id) {
                    let grace = kill
                        .grace
                        .unwrap_or_else(|| self.grace_period(Some(pod), None));
                    let ip = status
                        .sandbox()
                        .and_then(|s| s.ips.first())
                        .map(String::as_str);
                    self.kill_container(Some(pod), c, ip, grace, &kill.message)
                        .await?;
                }
            }
        }

        let mut sandbox = match self.ensure_sandbox(pod, &status, &actions).await {
            Ok(Some(sandbox)) => sandbox,
            Ok(None) => return Ok(result),
            Err(message) => {
                self.events.event(
                    pod,
                    EventType::Warning,
                    reason::FAILED_CREATE_POD_SANDBOX,
                    &message,
                );
                result.pod_error = Some(Waiting {
                    reason: CREATE_POD_SANDBOX_ERROR.into(),
                    message,
                });
                return Ok(result);
            }
        };
        result.sandbox_created = actions.create_sandbox;
        let spec = pod.spec.as_ref().expect("a pod that syncs has a spec");
        if !actions.init_containers_to_start.is_empty()
            || !actions.containers_to_start.is_empty()
            || !actions.ephemeral_containers_to_start.is_empty()
        {
            sandbox.pull_secrets = self.pull_secrets(pod).await;
        }
        // Ephemeral containers first, so a failing init container cannot keep a debugger out.
        let ephemerals = spec.ephemeral_containers.as_deref().unwrap_or_default();
        for &i in &actions.ephemeral_containers_to_start {
            let ec = &ephemerals[i];
            let c = ephemeral::as_container(ec);
            match ephemeral::target_id(ec, &status) {
                Ok(target) => {
                    self.start_container(
                        pod,
                        &c,
                        target.as_deref(),
                        &sandbox,
                        &status,
                        volumes,
                        &mut result,
                    )
                    .await
                }
                Err(message) => self.fail(
                    pod,
                    &c.name,
                    CREATE_CONTAINER_CONFIG_ERROR,
                    message,
                    &mut result,
                ),
            }
        }
        let inits = spec.init_containers.as_deref().unwrap_or_default();
        for &i in &actions.init_containers_to_start {
            let c = &inits[i];
            self.start_container(pod, c, None, &sandbox, &status, volumes, &mut result)
                .await;
            // An ordinary init container must run before anything after it; a sidecar that
            // failed to start does not hold the others back.
            if result.waiting.contains_key(&c.name) && !is_sidecar(c) {
                return Ok(result);
            }
        }
        for &i in &actions.containers_to_start {
            self.start_container(
                pod,
                &spec.containers[i],
                None,
                &sandbox,
                &status,
                volumes,
                &mut result,
            )
            .await;
        }
        Ok(result)
    }

    /// The sandbox to start containers in, created when the actions say so. The error is the
    /// message of the FailedCreatePodSandBox event.
    async fn ensure_sandbox(
        &self,
        pod: &Pod,
        status: &PodRuntimeStatus,
        actions: &PodActions,
    ) -> Result<Option<Sandbox>, String> {
        let config = pod_sandbox_config(pod, actions.attempt, &self.cfg.sandbox)
            .map_err(|e| format!("Failed to generate sandbox config for pod: {e}"))?;
        if !actions.create_sandbox {
            return Ok(status.sandbox().map(|sb| Sandbox {
                id: sb.id.clone(),
                config,
                ips: sb.ips.clone(),
                pull_secrets: Vec::new(),
            }));
        }
        std::fs::create_dir_all(&config.log_directory).map_err(|e| {
            format!(
                "Failed to create the pod log directory {}: {e}",
                config.log_directory
            )
        })?;
        let handler = self
            .runtime_handler(pod)
            .await
            .map_err(|e| format!("Failed to create pod sandbox: {e}"))?;
        let id = self
            .runtime
            .run_pod_sandbox(config.clone(), &handler)
            .await
            .map_err(|e| format!("Failed to create pod sandbox: {e}"))?;
        let network = self
            .runtime
            .pod_sandbox_status(&id)
            .await
            .map_err(|e| format!("Failed to get the status of new pod sandbox {id}: {e}"))?
            .network;
        let ips = network
            .map(|n| {
                std::iter::once(n.ip)
                    .chain(n.additional_ips.into_iter().map(|i| i.ip))
                    .filter(|ip| !ip.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(Sandbox {
            id,
            config,
            ips,
            pull_secrets: Vec::new(),
        }))
    }

    /// The CRI runtime handler of the pod's runtimeClassName; none means the runtime's default.
    async fn runtime_handler(&self, pod: &Pod) -> Result<String, kubelet_objects::ObjectError> {
        let class = pod
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.as_deref());
        match class.filter(|c| !c.is_empty()) {
            Some(class) => self.objects.runtime_handler(class).await,
            None => Ok(String::new()),
        }
    }

    /// The pod's image pull Secrets that can be read (upstream getPullSecretsForPod); the
    /// others are logged and named in a warning event, and the pull goes on without them.
    async fn pull_secrets(&self, pod: &Pod) -> Vec<Secret> {
        let (_, ns, uid) = pod_key(pod);
        let refs = pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_deref());
        let mut secrets = Vec::new();
        let mut missing = Vec::new();
        // Validation let entries with empty names through; they mean nothing.
        for name in refs
            .into_iter()
            .flatten()
            .map(|r| r.name.as_str())
            .filter(|n| !n.is_empty())
        {
            match self.objects.secret(&ns, name).await {
                Ok(secret) => secrets.push(secret),
                Err(e) => {
                    tracing::info!(pod_uid = %uid, secret = %format!("{ns}/{name}"), "Unable to retrieve pull secret, the image pull may not succeed: {e}");
                    missing.push(name);
                }
            }
        }
        if !missing.is_empty() {
            self.events.event(
                pod,
                EventType::Warning,
                FAILED_TO_RETRIEVE_IMAGE_PULL_SECRET,
                &format!(
                    "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                    missing.join(", ")
                ),
            );
        }
        secrets
    }

    /// Starts one container: back-off, image, config, create, start. A failure is recorded as the
    /// container's waiting reason. `pid_target`: the running container whose process namespace
    /// an ephemeral container joins.
    #[allow(clippy::too_many_arguments)]
    async fn start_container(
        &self,
        pod: &Pod,
        container: &Container,
        pid_target: Option<&str>,
        sandbox: &Sandbox,
        status: &PodRuntimeStatus,
        volumes: &PodVolumes,
        result: &mut SyncResult,
    ) {
        let (sandbox_id, sandbox_config, pod_ips) = (&sandbox.id, &sandbox.config, &sandbox.ips);
        let name = container.name.as_str();
        let (pod_name, ns, uid) = pod_key(pod);
        let previous = status.container(name);

        if let Some(prev) = previous.filter(|p| p.state == ContainerState::Exited) {
            let key = format!("{pod_name}_{ns}_{uid}_{name}_{}", container_hash(container));
            let finished = self.clock.instant_of(prev.finished_at);
            let mut backoff = self.backoff.lock().unwrap();
            if let Some(left) = backoff.remaining(&key, finished, Instant::now()) {
                let period = backoff.current(&key).unwrap_or_default();
                drop(backoff);
                let message = format!(
                    "back-off {} restarting failed container={name} pod={pod_name}_{ns}({uid})",
                    go_duration(period)
                );
                self.events.event(
                    pod,
                    EventType::Warning,
                    reason::BACK_OFF,
                    &format!(
                        "Back-off restarting failed container {name} in pod {pod_name}_{ns}({uid})"
                    ),
                );
                result.wait(name, CRASH_LOOP_BACK_OFF, message);
                result.retry_in(left);
                return;
            }
            backoff.next(&key, finished);
        }

        let pulling = tokio::time::Instant::now();
        let ensured = self
            .images
            .ensure_image(pod, container, sandbox_config, &sandbox.pull_secrets)
            .await;
        result.image_time += pulling.elapsed();
        let image_ref = match ensured {
            Ok(r) => r,
            Err(e) => {
                result.wait(name, e.reason, e.message);
                return;
            }
        };
        let restart_count = match previous {
            // Created but never started (the kubelet, or the runtime inside it, stopped between
            // create and start): it never ran, so it is replaced at the same attempt instead of
            // counting as a restart, as upstream would.
            Some(p) if p.state == ContainerState::Created => {
                if let Err(e) = self.runtime.remove_container(&p.id).await {
                    self.fail(pod, name, CREATE_CONTAINER_ERROR, e, result);
                    return;
                }
                p.restart_count()
            }
            Some(p) => p.restart_count() + 1,
            None => 0,
        };

        let env_sources = EnvSources::fetch(self.objects.as_ref(), pod, container).await;
        for message in invalid_env_from_keys(pod, container, &env_sources) {
            self.events.event(
                pod,
                EventType::Warning,
                INVALID_ENVIRONMENT_VARIABLE_NAMES,
                &message,
            );
        }
        let mut input = ContainerInput {
            pod,
            container,
            restart_count,
            image_ref,
            mounts: Vec::new(),
            pod_ip: pod_ips.first().cloned(),
            pod_ips: pod_ips.to_vec(),
            host_ip: self.cfg.host_ip.clone(),
            pod_dir: self.cfg.pods_dir.join(&uid),
            cluster_domain: self.cfg.sandbox.dns.cluster_domain.clone(),
            node_memory_capacity: self.cfg.node_memory_capacity,
            node_allocatable_cpu_milli: self.cfg.node_allocatable_cpu_milli,
            cfs_quota: self.cfg.sandbox.cfs_quota,
            memory_qos: self.cfg.memory_qos,
            env_sources,
        };
        let mounted = match with_resolved_env(&input) {
            Ok(c) => self.volumes.container_mounts(pod, volumes, &c),
            Err(e) => {
                self.fail(pod, name, CREATE_CONTAINER_CONFIG_ERROR, e, result);
                return;
            }
        };
        input.mounts = match mounted {
            Ok(m) => m,
            Err(e) => {
                self.fail(pod, name, CREATE_CONTAINER_CONFIG_ERROR, e, result);
                return;
            }
        };
        let block_devices = match self.volumes.container_devices(volumes, container) {
            Ok(d) => d,
            Err(e) => {
                self.fail(pod, name, CREATE_CONTAINER_CONFIG_ERROR, e, result);
                return;
            }
        };
        let mut config = match container_config(&input) {
            Ok(c) => c,
            Err(e) => {
                self.fail(pod, name, CREATE_CONTAINER_CONFIG_ERROR, e, result);
                return;
            }
        };
        if let Some(cpus) = &self.container_cpus
            && let Err(e) = container_cpus::apply(cpus.as_ref(), pod, container, &mut config)
        {
            self.fail(pod, name, container_cpus::PRE_CREATE_HOOK_ERROR, e, result);
            return;
        }
        if let Some(target) = pid_target {
            ephemeral::target_pid_namespace(&mut config, target);
        }
        if let Some(source) = &self.device_options {
            match source.options(pod, container).await {
                Ok(options) => options.apply(&mut config),
                Err(e) => {
                    self.fail(pod, name, CREATE_CONTAINER_CONFIG_ERROR, e, result);
                    return;
                }
            }
        }
        // After the device plugins' devices, as upstream appends the block volumes to them.
        config
            .devices
            .extend(block_devices.iter().map(mounts::cri_device));
        let log_path = Path::new(&sandbox_config.log_directory).join(&config.log_path);
        if let Some(dir) = log_path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            let message = format!(
                "cannot create the container log directory {}: {e}",
                dir.display()
            );
            result.wait(name, CREATE_CONTAINER_CONFIG_ERROR, message);
            return;
        }

        let id = match self
            .runtime
            .create_container(sandbox_id, config, sandbox_config.clone())
            .await
        {
            Ok(id) => id,
            Err(e) => {
                self.fail(pod, name, CREATE_CONTAINER_ERROR, e, result);
                return;
            }
        };
        self.events.event(
            pod,
            EventType::Normal,
            reason::CREATED,
            &format!("Created container {name}"),
        );
        if let Err(e) = self.runtime.start_container(&id).await {
            self.fail(pod, name, RUN_CONTAINER_ERROR, e, result);
            return;
        }
        self.events.event(
            pod,
            EventType::Normal,
            reason::STARTED,
            &format!("Started container {name}"),
        );
        // Log shippers read /var/log/containers; a missing link must not fail the pod.
        if let Err(e) = kubelet_logs::create_symlink(
            &self.cfg.container_logs_symlink_dir,
            &pod_name,
            &ns,
            name,
            &id,
            &log_path,
        ) {
            tracing::warn!(pod_uid = %uid, container = name, "cannot create the container log symlink: {e}");
        }
        if let Some(hook) = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.as_ref())
            && let Err(e) = self
                .hooks
                .run(pod, name, &id, pod_ips.first().map(String::as_str), hook)
                .await
        {
            // A failed postStart hook kills the container; the restart policy decides the rest.
            // As upstream, the event leaves the hook's output out so that no secret leaks.
            tracing::warn!(pod_uid = %uid, container = name, "postStart hook failed: {e}");
            self.events.event(
                pod,
                EventType::Warning,
                FAILED_POST_START_HOOK,
                "PostStartHook failed",
            );
            if let Err(e) = self
                .stop_container(&id, name, self.grace_period(Some(pod), None))
                .await
            {
                tracing::warn!(pod_uid = %uid, container = name, "cannot stop the container after its failed postStart hook: {e}");
            }
            result.wait(
                name,
                POST_START_HOOK_ERROR,
                format!("{POST_START_HOOK_ERROR}: {e}"),
            );
        }
    }
}

impl RuntimeManager {
    /// A container that could not be started: a Failed event ("Error: ..."), and its waiting
    /// reason with the bare message, as upstream's reason cache holds it.
    fn fail(
        &self,
        pod: &Pod,
        name: &str,
        waiting_reason: &str,
        error: impl std::fmt::Display,
        result: &mut SyncResult,
    ) {
        let message = error.to_string();
        self.events.event(
            pod,
            EventType::Warning,
            reason::FAILED,
            &format!("Error: {message}"),
        );
        result.wait(name, waiting_reason, message);
    }
}

/// The container as subPathExpr sees it: upstream expands it with the container's resolved
/// environment, so variables set with valueFrom (fieldRef, configMapKeyRef, ...) take part.
fn with_resolved_env<'a>(
    input: &ContainerInput<'a>,
) -> Result<Cow<'a, Container>, crate::container_config::env::EnvError> {
    let c = input.container;
    let uses_expr = c
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.sub_path_expr.as_deref().is_some_and(|e| !e.is_empty()));
    if !uses_expr {
        return Ok(Cow::Borrowed(c));
    }
    let env = environment(input)?
        .into_iter()
        .map(|(name, value)| EnvVar {
            name,
            value: Some(value),
            value_from: None,
        })
        .collect();
    Ok(Cow::Owned(Container {
        env: Some(env),
        ..c.clone()
    }))
}

#[cfg(test)]
mod tests;
