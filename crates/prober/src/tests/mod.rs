//! Manager and worker tests against the fake runtime, on paused tokio time.

mod gating;
mod results;
mod timing;

use crate::{ContainerRun, ProbeManager, ProbeUpdate};
use k8s_openapi::api::core::v1::{Container, ExecAction, Pod, PodSpec, Probe};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubelet_cri::RuntimeService;
use kubelet_cri::api::{
    ContainerConfig, ContainerMetadata, ExecSyncResponse, ImageSpec, PodSandboxConfig,
    PodSandboxMetadata,
};
use kubelet_cri::fake::FakeRuntime;
use kubelet_kuberuntime::events::{EventRecorder, EventType};
pub use std::slice::from_ref;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

pub const POD_UID: &str = "uid-web";
pub const IMAGE: &str = "busybox";

/// Events as (reason, message).
#[derive(Default)]
pub struct RecordedEvents(Mutex<Vec<(String, String)>>);

impl EventRecorder for RecordedEvents {
    fn event(&self, _pod: &Pod, kind: EventType, reason: &str, message: &str) {
        assert_eq!(kind, EventType::Warning, "the prober only warns");
        self.0
            .lock()
            .unwrap()
            .push((reason.to_string(), message.to_string()));
    }
}

impl RecordedEvents {
    pub fn all(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap().clone()
    }
}

pub struct Harness {
    pub fake: FakeRuntime,
    pub manager: ProbeManager,
    pub updates: UnboundedReceiver<ProbeUpdate>,
    pub events: Arc<RecordedEvents>,
    sandbox: String,
}

impl Harness {
    /// A manager made long enough ago that workers start without jitter, and a ready sandbox.
    pub async fn new() -> Self {
        let harness = Self::fresh().await;
        tokio::time::advance(Duration::from_secs(3600)).await;
        harness
    }

    /// A manager made just now, as right after a kubelet start.
    pub async fn fresh() -> Self {
        let fake = FakeRuntime::new();
        fake.add_image(IMAGE);
        let sandbox = fake
            .run_pod_sandbox(sandbox_config(), "")
            .await
            .expect("sandbox runs");
        let events = Arc::new(RecordedEvents::default());
        let (manager, updates) = ProbeManager::new(Arc::new(fake.clone()), events.clone());
        Harness {
            fake,
            manager,
            updates,
            events,
            sandbox,
        }
    }

    /// Starts container `name` (restart `attempt`) in the fake and returns what the kubelet
    /// would pass to `sync_pod` for it.
    pub async fn start(&self, name: &str, attempt: u32) -> ContainerRun {
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.to_string(),
                attempt,
            }),
            image: Some(ImageSpec {
                image: IMAGE.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = self
            .fake
            .create_container(&self.sandbox, config, sandbox_config())
            .await
            .expect("container is created");
        self.fake
            .start_container(&id)
            .await
            .expect("container starts");
        ContainerRun {
            name: name.to_string(),
            id,
            started_at: Instant::now(),
            restart_count: attempt,
        }
    }

    /// How many ExecSync calls ran `command` so far.
    pub fn execs(&self, command: &str) -> usize {
        self.fake
            .calls()
            .iter()
            .filter(|call| call.starts_with("ExecSync ") && call.ends_with(&format!(" {command}")))
            .count()
    }

    /// The updates sent so far.
    pub fn drain_updates(&mut self) -> Vec<ProbeUpdate> {
        std::iter::from_fn(|| self.updates.try_recv().ok()).collect()
    }
}

fn sandbox_config() -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "web".to_string(),
            uid: POD_UID.to_string(),
            namespace: "default".to_string(),
            attempt: 0,
        }),
        ..Default::default()
    }
}

/// The pod "default/web" with these containers.
pub fn pod(containers: Vec<Container>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some(POD_UID.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An exec probe running `command` every second, otherwise with upstream defaults.
pub fn exec_probe(command: &str) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec![command.to_string()]),
        }),
        period_seconds: Some(1),
        ..Default::default()
    }
}

pub fn container(name: &str) -> Container {
    Container {
        name: name.to_string(),
        image: Some(IMAGE.to_string()),
        ..Default::default()
    }
}

pub fn exit_code(code: i32) -> ExecSyncResponse {
    ExecSyncResponse {
        stdout: format!("exit {code}\n").into_bytes(),
        stderr: Vec::new(),
        exit_code: code,
    }
}

/// Lets paused time run for `seconds` (workers probe at their ticks meanwhile).
pub async fn pass(seconds: f64) {
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
}
