//! An in-memory CRI runtime for the kubelet's unit tests.
//!
//! [`FakeRuntime`] implements [`RuntimeService`](crate::RuntimeService) and
//! [`ImageService`](crate::ImageService) with containerd's CRI v1 semantics and error messages,
//! so code tested against it behaves the same against the real runtime. It is cheap to clone
//! (all clones share one state) and works as `Arc<dyn kubelet_cri::Runtime>`. Time is tokio's:
//! run tests with `#[tokio::test(start_paused = true)]` and advance it with
//! `tokio::time::advance` (or let an idle runtime auto-advance); nothing sleeps on real time.
//!
//! # What it does, like containerd
//! - **Sandboxes**: `RunPodSandbox` needs metadata, reserves the name
//!   `k8s_POD_<pod>_<ns>_<uid>_<attempt>` (a second sandbox with the same name fails until the
//!   first is removed), accepts the runtime handlers `""` and `"runc"`, and gives the pod an IP
//!   10.88.0.2, 10.88.0.3, ... (none for host-network pods). `StopPodSandbox` kills the running
//!   containers (exit 137, reason "Error"), marks the sandbox NOTREADY and drops its IP; it is
//!   idempotent. `RemovePodSandbox` stops it if needed and removes its containers too; removing
//!   an unknown sandbox succeeds.
//! - **Containers**: `CreateContainer` needs a READY sandbox, metadata, a free name
//!   `k8s_<container>_<pod>_<ns>_<uid>_<attempt>` and the image present; the container is
//!   CREATED. `StartContainer` needs CREATED and a READY sandbox. `StopContainer` on a running
//!   container sends SIGTERM (see [`Behavior`] for what follows) and leaves CREATED or EXITED
//!   containers alone; `RemoveContainer` kills a running container first and succeeds on unknown
//!   ids. `log_path` is the sandbox's log directory joined with the container's log path.
//!   `ContainerStatus` reports the image by its first tag and `image_ref` as its repo digest;
//!   `ListContainers` reports the image as requested and `image_ref` as the image id.
//! - **Images**: names are normalised as containerd does (`busybox` is
//!   `docker.io/library/busybox:latest`); an image is found by any tag, digest or id.
//!   `RemoveImage` drops all names of the image and succeeds for unknown images.
//! - **Lists** honour every filter field (ids also by unique prefix, labels as MatchLabels) and
//!   return items in creation order.
//! - **Events**: off by default, so `container_events` answers
//!   [`CriError::Unimplemented`] like containerd 1.6. After
//!   [`FakeRuntime::enable_events`] every stream gets CREATED/STARTED/STOPPED/DELETED events for
//!   containers and, as containerd 1.7 does, for the sandbox itself (with the sandbox id as
//!   `container_id`), each with the pod's sandbox status and all its container statuses.
//!
//! # Scripting
//! All scripting methods take `&self` and act at once on every clone.
//!
//! | method | effect |
//! | --- | --- |
//! | [`set_behavior`](FakeRuntime::set_behavior)`(name, b)` | what containers of that name do: [`Behavior`] |
//! | [`exit_container`](FakeRuntime::exit_container)`(id, code)` | a running container exits now |
//! | [`kill_sandbox`](FakeRuntime::kill_sandbox)`(id)` | the pause container "crashes": sandbox NOTREADY |
//! | [`add_image`](FakeRuntime::add_image)`(name)` | the image is present (returns its id) |
//! | [`set_pull_result`](FakeRuntime::set_pull_result)`(name, Ok/Err)` | later pulls succeed (adding the image) or fail |
//! | [`set_pull_delay`](FakeRuntime::set_pull_delay)`(name, d)` | later pulls take `d` of tokio time |
//! | [`inject_error`](FakeRuntime::inject_error)`(rpc, msg)` | the next call of `rpc` fails (queued, one-shot) |
//! | [`inject_cri_error`](FakeRuntime::inject_cri_error)`(rpc, e)` | the same with a chosen [`CriError`] |
//! | [`set_exec_result`](FakeRuntime::set_exec_result)`(name, r)` | what ExecSync answers in containers of that name |
//! | [`set_exec_hangs`](FakeRuntime::set_exec_hangs)`(name)` | ExecSync there times out after its timeout |
//! | [`set_runtime_condition`](FakeRuntime::set_runtime_condition)`(..)` | a condition `Status` reports |
//! | [`enable_events`](FakeRuntime::enable_events)`()` | `container_events` streams events |
//! | [`pull_auths`](FakeRuntime::pull_auths) | each PullImage's image and credentials |
//! | [`calls`](FakeRuntime::calls), [`actions`](FakeRuntime::actions), [`clear_calls`](FakeRuntime::clear_calls) | the call log |
//! | [`container_id`](FakeRuntime::container_id)`(name)`, [`sandbox_id`](FakeRuntime::sandbox_id)`(pod)` | newest id by name, without logging a call |
//!
//! ```
//! use kubelet_cri::fake::{Behavior, FakeRuntime};
//! use std::time::Duration;
//!
//! let fake = FakeRuntime::new();
//! fake.add_image("busybox");                            // present: no pull needed
//! fake.set_pull_result("nginx", Ok(()));                // pulling nginx succeeds
//! fake.set_pull_result("private/app", Err("unauthorized".into()));
//! fake.set_behavior("app", Behavior::ExitAfter { after: Duration::from_secs(5), code: 1 });
//! fake.set_behavior("init", Behavior::FailStart("exec: \"nope\": not found".into()));
//! fake.inject_error("StopPodSandbox", "network plugin is not ready"); // next call only
//! // ... run the code under test, then:
//! assert!(fake.actions().iter().all(|call| !call.starts_with("RemovePodSandbox")));
//! ```
//!
//! # The call log
//! Every RPC is logged when called (before any injected error is returned) as its CRI method
//! name followed by its subject, if it has one:
//! - `RunPodSandbox <pod name>`, and `StopPodSandbox` / `RemovePodSandbox` /
//!   `PodSandboxStatus <pod name>` (the raw id when the sandbox is unknown);
//! - `CreateContainer <container name>`, and `StartContainer` / `StopContainer` /
//!   `RemoveContainer` / `ContainerStatus` / `ReopenContainerLog <container name>` (the raw id
//!   when unknown); `ExecSync <container name> <cmd...>`;
//! - `PullImage` / `ImageStatus` / `RemoveImage <image as given>`;
//! - bare names for the rest: `Version`, `Status`, `ListPodSandbox`, `ListContainers`,
//!   `ListContainerStats`, `GetContainerEvents`, `ListImages`, `ImageFsInfo`.
//!
//! [`FakeRuntime::calls`] returns all of them; [`FakeRuntime::actions`] leaves out the read-only
//! ones (status, list, version and event calls), which is usually what a test about a sync
//! asserts on.

mod behavior;
mod clock;
mod events;
mod filters;
mod ids;
mod images;
mod rpc;
mod service;
mod state;
mod views;

#[cfg(test)]
mod tests;

pub use behavior::Behavior;

use crate::CriError;
use crate::api::{AuthConfig, ExecSyncResponse, RuntimeCondition};
use images::normalize;
use state::{ExecScript, State, failed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// An in-memory CRI runtime; see the [module docs](self) for its rules and scripting API.
#[derive(Clone)]
pub struct FakeRuntime {
    state: Arc<Mutex<State>>,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for FakeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("FakeRuntime")
            .field("sandboxes", &state.sandboxes.len())
            .field("containers", &state.containers.len())
            .field("calls", &state.calls.len())
            .finish()
    }
}

impl FakeRuntime {
    /// An empty runtime: no images, no pods, events disabled.
    pub fn new() -> Self {
        FakeRuntime {
            state: Arc::new(Mutex::new(State::new())),
        }
    }

    /// The state, even after a panicking test thread poisoned the lock: the fake's invariants
    /// hold between statements, and one failed assertion should not hide the others.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Scripts what containers named `container_name` (the CRI metadata name, i.e. the pod
    /// spec's container name) do from now on. Unscripted names run forever.
    pub fn set_behavior(&self, container_name: &str, behavior: Behavior) {
        self.lock()
            .behaviors
            .insert(container_name.to_string(), behavior);
    }

    /// Makes a running container exit now with `code` (reason "Completed" for 0, else "Error").
    ///
    /// # Panics
    /// If no running container has this id: the test's premise is wrong.
    pub fn exit_container(&self, container_id: &str, code: i32) {
        let mut state = self.lock();
        state.reap();
        assert!(
            state.exit_container(container_id, code),
            "exit_container: no running container {container_id:?}"
        );
    }

    /// Makes a sandbox NOTREADY as if its pause container crashed. Unlike StopPodSandbox, its
    /// containers keep running and its network stays.
    ///
    /// # Panics
    /// If there is no sandbox with this id.
    pub fn kill_sandbox(&self, sandbox_id: &str) {
        let mut state = self.lock();
        state.reap();
        assert!(
            state.crash_sandbox(sandbox_id),
            "kill_sandbox: no sandbox {sandbox_id:?}"
        );
    }

    /// Makes an image present, as if pulled or imported earlier; returns its id
    /// (`sha256:...`, derived from the normalised name).
    pub fn add_image(&self, reference: &str) -> String {
        self.lock().images.add(reference)
    }

    /// Scripts every later PullImage of `reference`: `Ok(())` succeeds and adds the image,
    /// `Err(message)` fails with that message. Without a script a pull succeeds only for an
    /// image already present and otherwise fails with containerd's "not found" error.
    pub fn set_pull_result(&self, reference: &str, result: Result<(), String>) {
        self.lock()
            .pull_results
            .insert(normalize(reference), result);
    }

    /// Makes the next call of `rpc` (a CRI method name such as "StartContainer") fail with
    /// `message` and gRPC code Unknown. Injections queue up: inject twice to fail twice.
    ///
    /// # Panics
    /// If `rpc` is not a CRI method the fake serves.
    pub fn inject_error(&self, rpc: &str, message: impl Into<String>) {
        let rpc = rpc::canonical(rpc);
        self.inject_cri_error(rpc, failed(rpc, message.into()));
    }

    /// Like [`FakeRuntime::inject_error`] with a specific error, e.g. `CriError::NotFound` or
    /// `CriError::Timeout`.
    ///
    /// # Panics
    /// If `rpc` is not a CRI method the fake serves.
    pub fn inject_cri_error(&self, rpc: &str, error: CriError) {
        self.lock()
            .injected
            .entry(rpc::canonical(rpc))
            .or_default()
            .push_back(error);
    }

    /// Scripts what ExecSync in containers named `container_name` answers (default: exit code
    /// 0 and no output).
    pub fn set_exec_result(&self, container_name: &str, response: ExecSyncResponse) {
        self.lock()
            .exec_scripts
            .insert(container_name.to_string(), ExecScript::Reply(response));
    }

    /// Makes ExecSync in containers named `container_name` hang: each call waits out its timeout
    /// (on tokio time) and fails with [`CriError::Timeout`], as an exec probe that times out.
    pub fn set_exec_hangs(&self, container_name: &str) {
        self.lock()
            .exec_scripts
            .insert(container_name.to_string(), ExecScript::Hang);
    }

    /// Makes every later PullImage of `reference` take `delay` (on tokio time) before it
    /// succeeds or fails, so tests can watch a pull in progress.
    pub fn set_pull_delay(&self, reference: &str, delay: Duration) {
        self.lock().pull_delays.insert(normalize(reference), delay);
    }

    /// Sets a runtime condition reported by `Status`, e.g.
    /// `set_runtime_condition("NetworkReady", false, "NetworkPluginNotReady", "cni config
    /// uninitialized")`. Both RuntimeReady and NetworkReady start true.
    pub fn set_runtime_condition(&self, kind: &str, status: bool, reason: &str, message: &str) {
        let condition = RuntimeCondition {
            r#type: kind.to_string(),
            status,
            reason: reason.to_string(),
            message: message.to_string(),
        };
        let mut state = self.lock();
        match state.conditions.iter_mut().find(|c| c.r#type == kind) {
            Some(existing) => *existing = condition,
            None => state.conditions.push(condition),
        }
    }

    /// Turns on the container event stream (containerd 1.7 behaviour). Only transitions after
    /// a stream is opened are delivered to it.
    pub fn enable_events(&self) {
        self.lock().event_subscribers.get_or_insert_with(Vec::new);
    }

    /// Every RPC made so far, oldest first; see the module docs for the format.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// The calls that act on the runtime: [`FakeRuntime::calls`] without the read-only ones.
    pub fn actions(&self) -> Vec<String> {
        self.lock()
            .calls
            .iter()
            .filter(|call| {
                let method = call.split(' ').next().unwrap_or_default();
                !rpc::READ_ONLY.contains(&method)
            })
            .cloned()
            .collect()
    }

    /// Every PullImage so far, oldest first: the image as given and the credentials sent.
    pub fn pull_auths(&self) -> Vec<(String, Option<AuthConfig>)> {
        self.lock().pull_auths.clone()
    }

    /// Forgets the calls made so far.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// The id of the newest container named `container_name`, if any (not logged as a call).
    pub fn container_id(&self, container_name: &str) -> Option<String> {
        self.lock()
            .containers
            .values()
            .filter(|c| c.container_name() == container_name)
            .max_by_key(|c| c.seq)
            .map(|c| c.id.clone())
    }

    /// The id of the newest sandbox of the pod named `pod_name`, if any (not logged as a call).
    pub fn sandbox_id(&self, pod_name: &str) -> Option<String> {
        self.lock()
            .sandboxes
            .values()
            .filter(|s| s.pod_name() == pod_name)
            .max_by_key(|s| s.seq)
            .map(|s| s.id.clone())
    }
}
