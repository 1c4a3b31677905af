//! The fake runtime's records and the CRI state machine over them, with containerd's rules and
//! error messages.

use super::behavior::{Behavior, ScheduledExit};
use super::clock::Clock;
use super::ids::hex64;
use super::images::{ImageStore, StoredImage, normalize};
use super::rpc;
use crate::CriError;
use crate::api::{
    AuthConfig, ContainerConfig, ContainerEventResponse, ContainerEventType, ContainerState,
    ExecSyncResponse, NamespaceMode, PodSandboxConfig, PodSandboxState, RuntimeCondition,
};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

/// Runtime handlers the fake accepts; containerd rejects any other name.
const KNOWN_RUNTIME_HANDLERS: &[&str] = &["", "runc"];
/// containerd's exit code and reason for a container whose task could not start.
const START_ERROR_EXIT_CODE: i32 = 128;
const START_ERROR_REASON: &str = "StartError";
/// 128 + SIGKILL: what a killed container exits with.
const KILLED_EXIT_CODE: i32 = 137;

pub(super) fn not_found(rpc: &'static str, message: String) -> CriError {
    CriError::NotFound { rpc, message }
}

pub(super) fn failed(rpc: &'static str, message: String) -> CriError {
    CriError::Rpc {
        rpc,
        code: tonic::Code::Unknown,
        message,
    }
}

/// containerd's reason for an exit code, when the OOM killer was not involved.
fn exit_reason(code: i32) -> &'static str {
    if code == 0 { "Completed" } else { "Error" }
}

#[derive(Debug)]
pub(super) struct SandboxRecord {
    pub id: String,
    pub seq: u64,
    /// containerd's unique name, `k8s_POD_<pod>_<ns>_<uid>_<attempt>`.
    pub reserved_name: String,
    pub config: PodSandboxConfig,
    pub runtime_handler: String,
    pub state: PodSandboxState,
    pub created_at: i64,
    /// Empty for host-network pods.
    pub ip: String,
    /// StopPodSandbox tears the network down; a crashed pause container leaves it.
    pub network_torn_down: bool,
}

impl SandboxRecord {
    pub fn pod_name(&self) -> &str {
        self.config
            .metadata
            .as_ref()
            .map_or("", |m| m.name.as_str())
    }
}

#[derive(Debug)]
pub(super) struct ContainerRecord {
    pub id: String,
    pub seq: u64,
    pub sandbox_id: String,
    /// containerd's unique name, `k8s_<container>_<pod>_<ns>_<uid>_<attempt>`.
    pub reserved_name: String,
    pub config: ContainerConfig,
    pub image: StoredImage,
    pub log_path: String,
    pub state: ContainerState,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub behavior: Behavior,
    pub exit_deadline: Option<(Instant, ScheduledExit)>,
    /// When it started, on tokio's clock, for CPU usage in stats.
    pub started: Option<Instant>,
}

impl ContainerRecord {
    pub fn container_name(&self) -> &str {
        self.config
            .metadata
            .as_ref()
            .map_or("", |m| m.name.as_str())
    }
}

/// What ExecSync answers in containers of one name.
#[derive(Debug, Clone)]
pub(super) enum ExecScript {
    Reply(ExecSyncResponse),
    /// The command never finishes: the call fails once its timeout has passed.
    Hang,
}

/// A runtime condition that holds, as a healthy containerd reports it.
fn ready_condition(kind: &str) -> RuntimeCondition {
    RuntimeCondition {
        r#type: kind.to_string(),
        status: true,
        reason: String::new(),
        message: String::new(),
    }
}

/// What StopContainer must do after the state lock is released.
pub(super) enum StopOutcome {
    Done,
    /// The container ignores SIGTERM: wait out the grace period, then kill it.
    KillAfter(Duration),
}

pub(super) struct State {
    pub clock: Clock,
    next_seq: u64,
    next_ip: u32,
    pub sandboxes: HashMap<String, SandboxRecord>,
    pub containers: HashMap<String, ContainerRecord>,
    /// Reserved sandbox and container names (containerd's name index), name -> id.
    names: HashMap<String, String>,
    pub images: ImageStore,
    pub behaviors: HashMap<String, Behavior>,
    pub pull_results: HashMap<String, Result<(), String>>,
    pub injected: HashMap<&'static str, VecDeque<CriError>>,
    pub exec_scripts: HashMap<String, ExecScript>,
    pub pull_delays: HashMap<String, Duration>,
    /// Every PullImage's image and credentials, oldest first.
    pub pull_auths: Vec<(String, Option<AuthConfig>)>,
    pub conditions: Vec<RuntimeCondition>,
    pub calls: Vec<String>,
    /// `None` until events are enabled; then one sender per open stream.
    pub event_subscribers: Option<Vec<UnboundedSender<ContainerEventResponse>>>,
}

impl State {
    pub fn new() -> Self {
        State {
            clock: Clock::new(),
            next_seq: 0,
            next_ip: 2,
            sandboxes: HashMap::new(),
            containers: HashMap::new(),
            names: HashMap::new(),
            images: ImageStore::default(),
            behaviors: HashMap::new(),
            pull_results: HashMap::new(),
            injected: HashMap::new(),
            exec_scripts: HashMap::new(),
            pull_delays: HashMap::new(),
            pull_auths: Vec::new(),
            conditions: vec![
                ready_condition("RuntimeReady"),
                ready_condition("NetworkReady"),
            ],
            calls: Vec::new(),
            event_subscribers: None,
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Every RPC starts here: notice due exits, log the call, fail if a test injected an error.
    pub fn begin(&mut self, rpc: &'static str, subject: Option<&str>) -> crate::Result<()> {
        self.reap();
        self.calls.push(match subject {
            Some(subject) => format!("{rpc} {subject}"),
            None => rpc.to_string(),
        });
        match self.injected.get_mut(rpc).and_then(VecDeque::pop_front) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Resolves a full or unique truncated id, as containerd's id index does.
    fn resolve<'a, T>(map: &'a HashMap<String, T>, id: &str) -> Option<&'a str> {
        if id.is_empty() {
            return None;
        }
        if let Some((key, _)) = map.get_key_value(id) {
            return Some(key);
        }
        let mut matches = map.keys().filter(|key| key.starts_with(id));
        match (matches.next(), matches.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }

    pub fn sandbox_id(&self, id: &str) -> Option<String> {
        Self::resolve(&self.sandboxes, id).map(str::to_string)
    }

    pub fn container_id(&self, id: &str) -> Option<String> {
        Self::resolve(&self.containers, id).map(str::to_string)
    }

    /// The pod name of a sandbox id, for the call log (the id itself when unknown).
    pub fn sandbox_subject(&self, id: &str) -> String {
        self.sandbox_id(id)
            .and_then(|id| self.sandboxes.get(&id))
            .map_or_else(|| id.to_string(), |s| s.pod_name().to_string())
    }

    /// The container name of a container id, for the call log (the id itself when unknown).
    pub fn container_subject(&self, id: &str) -> String {
        self.container_id(id)
            .and_then(|id| self.containers.get(&id))
            .map_or_else(|| id.to_string(), |c| c.container_name().to_string())
    }

    /// Applies every scheduled exit whose time has come, oldest first.
    pub fn reap(&mut self) {
        let now = self.clock.now();
        let mut due: Vec<(Instant, String)> = self
            .containers
            .values()
            .filter(|c| c.state == ContainerState::ContainerRunning)
            .filter_map(|c| match c.exit_deadline {
                Some((at, _)) if at <= now => Some((at, c.id.clone())),
                _ => None,
            })
            .collect();
        due.sort();
        for (at, id) in due {
            let Some((_, exit)) = self.containers.get(&id).and_then(|c| c.exit_deadline) else {
                continue;
            };
            let reason = if exit.oom {
                "OOMKilled"
            } else {
                exit_reason(exit.code)
            };
            let finished_at = self.clock.nanos_at(at);
            self.finish(&id, finished_at, exit.code, reason, String::new());
        }
    }

    /// The earliest scheduled exit still pending, for event streams to wake up at.
    pub fn next_exit_deadline(&self) -> Option<Instant> {
        self.containers
            .values()
            .filter(|c| c.state == ContainerState::ContainerRunning)
            .filter_map(|c| c.exit_deadline.map(|(at, _)| at))
            .min()
    }

    /// Moves a running container to EXITED and announces it.
    pub fn finish(&mut self, id: &str, finished_at: i64, code: i32, reason: &str, message: String) {
        let Some(container) = self.containers.get_mut(id) else {
            return;
        };
        container.state = ContainerState::ContainerExited;
        container.finished_at = finished_at;
        container.exit_code = code;
        container.reason = reason.to_string();
        container.message = message;
        container.exit_deadline = None;
        let sandbox_id = container.sandbox_id.clone();
        self.emit(id, &sandbox_id, ContainerEventType::ContainerStoppedEvent);
    }

    /// Kills a running container now (SIGKILL: 137, "Error"); anything else is left alone.
    pub fn kill(&mut self, id: &str) {
        if self.containers.get(id).map(|c| c.state) == Some(ContainerState::ContainerRunning) {
            let now = self.clock.now_nanos();
            self.finish(id, now, KILLED_EXIT_CODE, "Error", String::new());
        }
    }

    pub fn run_pod_sandbox(
        &mut self,
        config: PodSandboxConfig,
        runtime_handler: &str,
    ) -> crate::Result<String> {
        let rpc = rpc::RUN_POD_SANDBOX;
        let Some(metadata) = config.metadata.clone() else {
            return Err(failed(rpc, "sandbox config must include metadata".into()));
        };
        if !KNOWN_RUNTIME_HANDLERS.contains(&runtime_handler) {
            return Err(failed(
                rpc,
                format!("no runtime for {runtime_handler:?} is configured"),
            ));
        }
        let name = format!(
            "k8s_POD_{}_{}_{}_{}",
            metadata.name, metadata.namespace, metadata.uid, metadata.attempt
        );
        if let Some(holder) = self.names.get(&name) {
            return Err(failed(
                rpc,
                format!(
                    "failed to reserve sandbox name {name:?}: name {name:?} is reserved for {holder:?}"
                ),
            ));
        }
        let seq = self.next_seq();
        let id = hex64(seq);
        let host_network = config
            .linux
            .as_ref()
            .and_then(|linux| linux.security_context.as_ref())
            .and_then(|context| context.namespace_options.as_ref())
            .is_some_and(|options| options.network == NamespaceMode::Node as i32);
        let ip = if host_network {
            String::new()
        } else {
            let n = self.next_ip;
            self.next_ip += 1;
            format!("10.88.{}.{}", n / 256, n % 256)
        };
        self.names.insert(name.clone(), id.clone());
        self.sandboxes.insert(
            id.clone(),
            SandboxRecord {
                id: id.clone(),
                seq,
                reserved_name: name,
                config,
                runtime_handler: runtime_handler.to_string(),
                state: PodSandboxState::SandboxReady,
                created_at: self.clock.now_nanos(),
                ip,
                network_torn_down: false,
            },
        );
        // containerd 1.7 reports the pause container's own lifecycle on the event stream.
        self.emit(&id, &id, ContainerEventType::ContainerCreatedEvent);
        self.emit(&id, &id, ContainerEventType::ContainerStartedEvent);
        Ok(id)
    }

    /// Stops the sandbox: its running containers are killed, the pause container stops and the
    /// network is torn down. Stopping a stopped sandbox is fine.
    pub fn stop_pod_sandbox(&mut self, id: &str) -> crate::Result<()> {
        let Some(id) = self.sandbox_id(id) else {
            return Err(not_found(
                rpc::STOP_POD_SANDBOX,
                format!("an error occurred when try to find sandbox {id:?}: not found"),
            ));
        };
        for container in self.containers_of(&id) {
            self.kill(&container);
        }
        let sandbox = self.sandboxes.get_mut(&id).expect("resolved above");
        sandbox.network_torn_down = true;
        if sandbox.state == PodSandboxState::SandboxReady {
            sandbox.state = PodSandboxState::SandboxNotready;
            self.emit(&id, &id, ContainerEventType::ContainerStoppedEvent);
        }
        Ok(())
    }

    /// Makes a ready sandbox NOTREADY as if its pause container died; containers keep running.
    /// Returns false when there is no such sandbox.
    pub fn crash_sandbox(&mut self, id: &str) -> bool {
        let Some(id) = self.sandbox_id(id) else {
            return false;
        };
        let sandbox = self.sandboxes.get_mut(&id).expect("resolved above");
        if sandbox.state == PodSandboxState::SandboxReady {
            sandbox.state = PodSandboxState::SandboxNotready;
            self.emit(&id, &id, ContainerEventType::ContainerStoppedEvent);
        }
        true
    }

    /// Removes the sandbox with all its containers, stopping whatever still runs, as containerd
    /// does. Removing an unknown sandbox succeeds.
    pub fn remove_pod_sandbox(&mut self, id: &str) -> crate::Result<()> {
        let Some(id) = self.sandbox_id(id) else {
            return Ok(());
        };
        self.stop_pod_sandbox(&id)?;
        for container in self.containers_of(&id) {
            self.remove_container(&container);
        }
        self.emit(&id, &id, ContainerEventType::ContainerDeletedEvent);
        if let Some(sandbox) = self.sandboxes.remove(&id) {
            self.names.remove(&sandbox.reserved_name);
        }
        Ok(())
    }

    /// Ids of a sandbox's containers, in creation order.
    pub fn containers_of(&self, sandbox_id: &str) -> Vec<String> {
        let mut ids: Vec<(u64, String)> = self
            .containers
            .values()
            .filter(|c| c.sandbox_id == sandbox_id)
            .map(|c| (c.seq, c.id.clone()))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    pub fn create_container(
        &mut self,
        sandbox_id: &str,
        config: ContainerConfig,
        sandbox_config: &PodSandboxConfig,
    ) -> crate::Result<String> {
        let rpc = rpc::CREATE_CONTAINER;
        let Some(sandbox_id) = self.sandbox_id(sandbox_id) else {
            return Err(not_found(
                rpc,
                format!("failed to find sandbox id {sandbox_id:?}: not found"),
            ));
        };
        let sandbox = &self.sandboxes[&sandbox_id];
        if sandbox.state != PodSandboxState::SandboxReady {
            return Err(not_found(
                rpc,
                format!(
                    "failed to get sandbox container task: no running task found: task {sandbox_id} not found: not found"
                ),
            ));
        }
        let Some(metadata) = config.metadata.clone() else {
            return Err(failed(rpc, "container config must include metadata".into()));
        };
        let pod = sandbox.config.metadata.clone().unwrap_or_default();
        let name = format!(
            "k8s_{}_{}_{}_{}_{}",
            metadata.name, pod.name, pod.namespace, pod.uid, metadata.attempt
        );
        if let Some(holder) = self.names.get(&name) {
            return Err(failed(
                rpc,
                format!(
                    "failed to reserve container name {name:?}: name {name:?} is reserved for {holder:?}"
                ),
            ));
        }
        let image_name = config
            .image
            .as_ref()
            .map(|spec| spec.image.clone())
            .unwrap_or_default();
        let Some(image) = self.images.resolve(&image_name).cloned() else {
            return Err(not_found(
                rpc,
                format!(
                    "failed to resolve image {:?}: not found",
                    normalize(&image_name)
                ),
            ));
        };
        if let Some(Behavior::FailCreate(message)) = self.behaviors.get(&metadata.name) {
            return Err(failed(rpc, message.clone()));
        }
        let log_path = if sandbox_config.log_directory.is_empty() || config.log_path.is_empty() {
            String::new()
        } else {
            format!(
                "{}/{}",
                sandbox_config.log_directory.trim_end_matches('/'),
                config.log_path
            )
        };
        let seq = self.next_seq();
        let id = hex64(seq);
        self.names.insert(name.clone(), id.clone());
        self.containers.insert(
            id.clone(),
            ContainerRecord {
                id: id.clone(),
                seq,
                sandbox_id: sandbox_id.clone(),
                reserved_name: name,
                config,
                image,
                log_path,
                state: ContainerState::ContainerCreated,
                created_at: self.clock.now_nanos(),
                started_at: 0,
                finished_at: 0,
                exit_code: 0,
                reason: String::new(),
                message: String::new(),
                behavior: Behavior::RunForever,
                exit_deadline: None,
                started: None,
            },
        );
        self.emit(&id, &sandbox_id, ContainerEventType::ContainerCreatedEvent);
        Ok(id)
    }

    pub fn start_container(&mut self, id: &str) -> crate::Result<()> {
        let rpc = rpc::START_CONTAINER;
        let Some(id) = self.container_id(id) else {
            return Err(not_found(
                rpc,
                format!("an error occurred when try to find container {id:?}: not found"),
            ));
        };
        let container = &self.containers[&id];
        if container.state != ContainerState::ContainerCreated {
            return Err(failed(
                rpc,
                format!("container is in {} state", container.state.as_str_name()),
            ));
        }
        let sandbox_id = container.sandbox_id.clone();
        if self.sandboxes.get(&sandbox_id).map(|s| s.state) != Some(PodSandboxState::SandboxReady) {
            return Err(failed(
                rpc,
                format!("sandbox container {sandbox_id:?} is not running"),
            ));
        }
        let behavior = self
            .behaviors
            .get(container.container_name())
            .cloned()
            .unwrap_or_default();
        let now = self.clock.now();
        let now_nanos = self.clock.nanos_at(now);
        if let Behavior::FailStart(cause) = &behavior {
            let message = format!("failed to create containerd task: {cause}");
            self.finish(
                &id,
                now_nanos,
                START_ERROR_EXIT_CODE,
                START_ERROR_REASON,
                message.clone(),
            );
            return Err(failed(rpc, message));
        }
        let container = self.containers.get_mut(&id).expect("resolved above");
        container.state = ContainerState::ContainerRunning;
        container.started_at = now_nanos;
        container.started = Some(now);
        container.exit_deadline = behavior
            .scheduled_exit()
            .map(|exit| (now + exit.after, exit));
        container.behavior = behavior;
        self.emit(&id, &sandbox_id, ContainerEventType::ContainerStartedEvent);
        Ok(())
    }

    /// Sends SIGTERM. A container that ignores it is killed later by the caller; one that is not
    /// running is left as it is (containerd does not touch CREATED or EXITED containers).
    pub fn stop_container(&mut self, id: &str, timeout: Duration) -> crate::Result<StopOutcome> {
        let Some(id) = self.container_id(id) else {
            return Err(not_found(
                rpc::STOP_CONTAINER,
                format!("an error occurred when try to find container {id:?}: not found"),
            ));
        };
        let container = &self.containers[&id];
        if container.state != ContainerState::ContainerRunning {
            return Ok(StopOutcome::Done);
        }
        if container.behavior == Behavior::IgnoreTerm {
            if timeout.is_zero() {
                self.kill(&id);
                return Ok(StopOutcome::Done);
            }
            return Ok(StopOutcome::KillAfter(timeout));
        }
        let now = self.clock.now_nanos();
        self.finish(&id, now, 0, exit_reason(0), String::new());
        Ok(StopOutcome::Done)
    }

    /// Removes a container, killing it first if it runs. Unknown ids are fine.
    pub fn remove_container(&mut self, id: &str) {
        let Some(id) = self.container_id(id) else {
            return;
        };
        self.kill(&id);
        if let Some(container) = self.containers.remove(&id) {
            self.names.remove(&container.reserved_name);
            self.emit(
                &id,
                &container.sandbox_id,
                ContainerEventType::ContainerDeletedEvent,
            );
        }
    }

    /// Exits a running container now with `code`. Returns false if it is unknown or not running.
    pub fn exit_container(&mut self, id: &str, code: i32) -> bool {
        let Some(id) = self.container_id(id) else {
            return false;
        };
        if self.containers[&id].state != ContainerState::ContainerRunning {
            return false;
        }
        let now = self.clock.now_nanos();
        self.finish(&id, now, code, exit_reason(code), String::new());
        true
    }
}
