//! A sync against the fake runtime with objects from a FakeObjects: pull Secrets and env.

use super::*;
use crate::actions::NoProbeResults;
use crate::dns::DnsOptions;
use crate::events::EventRecorder;
use crate::hooks::HookRunner;
use crate::manager::ManagerConfig;
use crate::sandbox_config::SandboxOptions;
use k8s_openapi::api::core::v1::{ConfigMap, LifecycleHandler};
use kubelet_cri::fake::FakeRuntime;
use kubelet_objects::FakeObjects;
use kubelet_volumes::VolumeManager;
use serde_json::json;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Events(Mutex<Vec<(String, String)>>);

impl EventRecorder for Events {
    fn event(&self, _: &Pod, _: EventType, reason: &str, message: &str) {
        let event = (reason.to_owned(), message.to_owned());
        self.0.lock().unwrap().push(event);
    }

    fn node_event(&self, _: EventType, reason: &str, message: &str) {
        let event = (format!("node/{reason}"), message.to_owned());
        self.0.lock().unwrap().push(event);
    }
}

struct NoHooks;

#[async_trait::async_trait]
impl HookRunner for NoHooks {
    async fn run(
        &self,
        _: &Pod,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: &LifecycleHandler,
    ) -> Result<(), String> {
        Ok(())
    }
}

struct Setup {
    fake: FakeRuntime,
    objects: FakeObjects,
    events: Arc<Events>,
    manager: RuntimeManager,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeRuntime::new();
    let objects = FakeObjects::default();
    let events = Arc::new(Events::default());
    std::fs::write(dir.path().join("resolv.conf"), "nameserver 192.0.2.53\n").unwrap();
    let cfg = ManagerConfig {
        sandbox: SandboxOptions {
            pod_logs_dir: dir.path().join("logs"),
            dns: DnsOptions {
                cluster_domain: "cluster.local".into(),
                resolv_conf: dir.path().join("resolv.conf"),
                ..Default::default()
            },
            cgroup_root: "/".into(),
            cgroups_per_qos: true,
            cgroup_driver: Default::default(),
            cfs_quota: Default::default(),
        },
        pods_dir: dir.path().join("pods"),
        container_logs_symlink_dir: dir.path().join("containers"),
        host_ip: None,
        node_memory_capacity: 1 << 30,
        node_allocatable_cpu_milli: None,
        serialize_image_pulls: true,
        dead_containers: Default::default(),
        memory_qos: None,
    };
    let manager = RuntimeManager::new(
        Arc::new(fake.clone()),
        Arc::new(VolumeManager::new(dir.path().join("root"))),
        events.clone(),
        Arc::new(NoHooks),
        cfg,
    )
    .await
    .unwrap()
    .with_objects(Arc::new(objects.clone()));
    Setup {
        fake,
        objects,
        events,
        manager,
        dir,
    }
}

fn pod(uid: &str, container: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("web-{uid}"), "namespace": "prod", "uid": uid},
        "spec": {
            "containers": [container],
            "imagePullSecrets": [{"name": "regcred"}, {"name": "missing"}, {"name": ""}]
        }
    }))
    .unwrap()
}

impl Setup {
    async fn sync(&self, pod: &Pod) -> SyncResult {
        let uid = pod.metadata.uid.as_deref().unwrap();
        std::fs::create_dir_all(self.dir.path().join("pods").join(uid)).unwrap();
        self.manager
            .sync_pod(pod, &PodVolumes::default(), &NoProbeResults)
            .await
            .unwrap()
    }

    fn events(&self, reason: &str) -> Vec<String> {
        let events = self.events.0.lock().unwrap();
        events
            .iter()
            .filter(|(r, _)| r == reason)
            .map(|(_, m)| m.clone())
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn pull_secrets_and_env_objects_come_from_the_object_source() {
    let s = setup().await;
    let regcred: Secret = serde_json::from_value(json!({
        "metadata": {"name": "regcred", "namespace": "prod"},
        "type": "kubernetes.io/dockerconfigjson",
        // {"auths":{"registry.test:5000":{"username":"alice","password":"pw"}}}
        "data": {".dockerconfigjson": "eyJhdXRocyI6eyJyZWdpc3RyeS50ZXN0OjUwMDAiOnsidXNlcm5hbWUiOiJhbGljZSIsInBhc3N3b3JkIjoicHcifX19"}
    }))
    .unwrap();
    s.objects.put_secret(regcred);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "settings", "namespace": "prod"},
        "data": {"MODE": "fast", "a=b": "x"}
    }))
    .unwrap();
    s.objects.put_config_map(cm);
    s.fake.set_pull_result("registry.test:5000/app:1", Ok(()));

    let p = pod(
        "u1",
        json!({
            "name": "app",
            "image": "registry.test:5000/app:1",
            "envFrom": [{"configMapRef": {"name": "settings"}}]
        }),
    );
    let result = s.sync(&p).await;
    assert!(result.is_ok(), "{result:?}");
    let auths = s.fake.pull_auths();
    assert_eq!(auths.len(), 1);
    let auth = auths[0].1.clone().expect("the pull Secret's credentials");
    assert_eq!(
        (auth.username.as_str(), auth.password.as_str()),
        ("alice", "pw")
    );
    assert_eq!(
        s.events(FAILED_TO_RETRIEVE_IMAGE_PULL_SECRET),
        [
            "Unable to retrieve some image pull secrets (missing); attempting to pull the image may not succeed."
        ]
    );
    assert_eq!(
        s.events(INVALID_ENVIRONMENT_VARIABLE_NAMES),
        [
            "Keys [a=b] from the EnvFrom configMap prod/settings were skipped since they are considered invalid environment variable names."
        ]
    );
    assert!(s.fake.container_id("app").is_some());
}

#[tokio::test(start_paused = true)]
async fn a_missing_config_map_is_a_create_container_config_error() {
    let s = setup().await;
    s.fake.add_image("localhost/busybox:1.35");
    let p = pod(
        "u2",
        json!({
            "name": "app",
            "image": "localhost/busybox:1.35",
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "ghost", "key": "k"}}}]
        }),
    );
    let result = s.sync(&p).await;
    assert_eq!(
        result.waiting["app"],
        Waiting {
            reason: CREATE_CONTAINER_CONFIG_ERROR.into(),
            message: "configmap \"ghost\" not found".into(),
        }
    );
    assert!(s.fake.container_id("app").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_container_created_but_never_started_is_replaced_at_the_same_attempt() {
    use kubelet_cri::RuntimeService;
    let s = setup().await;
    s.fake.add_image("localhost/busybox:1.35");
    let p = pod(
        "u3",
        json!({"name": "app", "image": "localhost/busybox:1.35"}),
    );
    // As if the kubelet had stopped between CreateContainer and StartContainer.
    s.fake.inject_error("StartContainer", "cut off");
    assert!(!s.sync(&p).await.is_ok());
    let created = s.fake.container_id("app").expect("the created container");

    assert!(s.sync(&p).await.is_ok());
    let containers = s.fake.list_containers(None).await.unwrap();
    assert_eq!(containers.len(), 1, "{containers:?}");
    let running = &containers[0];
    assert_ne!(
        running.id, created,
        "the never-started container is removed"
    );
    assert_eq!(running.metadata.as_ref().unwrap().attempt, 0);
    assert_eq!(
        running.state,
        kubelet_cri::api::ContainerState::ContainerRunning as i32
    );
}

#[tokio::test(start_paused = true)]
async fn the_runtime_class_names_the_sandbox_handler() {
    use kubelet_cri::RuntimeService;
    let s = setup().await;
    s.fake.add_image("localhost/busybox:1.35");
    s.objects.put_runtime_class("fast", "runc");
    s.objects.put_runtime_class("secure", "kata");
    let with_class = |uid: &str, class: &str| {
        let mut p = pod(
            uid,
            json!({"name": "app", "image": "localhost/busybox:1.35"}),
        );
        p.spec.as_mut().unwrap().runtime_class_name = Some(class.into());
        p
    };

    assert!(s.sync(&with_class("u4", "fast")).await.is_ok());
    let sandboxes = s.fake.list_pod_sandbox(None).await.unwrap();
    assert_eq!(sandboxes.len(), 1, "{sandboxes:?}");
    assert_eq!(sandboxes[0].runtime_handler, "runc");

    // A handler the runtime does not have, and a class the API does not have: the pod waits
    // with upstream's event and is tried again.
    let result = s.sync(&with_class("u5", "secure")).await;
    assert_eq!(
        result.pod_error.map(|w| w.reason).as_deref(),
        Some(CREATE_POD_SANDBOX_ERROR)
    );
    let result = s.sync(&with_class("u6", "ghost")).await;
    assert!(result.pod_error.is_some());
    let events = s.events(reason::FAILED_CREATE_POD_SANDBOX);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events[0].starts_with("Failed to create pod sandbox: ")
            && events[0].contains("no runtime for \"kata\" is configured"),
        "{events:?}"
    );
    assert_eq!(
        events[1],
        "Failed to create pod sandbox: runtimeclass.node.k8s.io \"ghost\" not found"
    );
    assert_eq!(s.fake.list_pod_sandbox(None).await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_ephemeral_container_runs_once_and_needs_its_target_running() {
    let s = setup().await;
    s.fake.add_image("localhost/busybox:1.35");
    let mut p = pod(
        "u9",
        json!({"name": "app", "image": "localhost/busybox:1.35"}),
    );
    let spec = p.spec.as_mut().unwrap();
    spec.restart_policy = Some("Never".into());
    spec.containers.push(
        serde_json::from_value(json!({"name": "side", "image": "localhost/busybox:1.35"})).unwrap(),
    );
    assert!(s.sync(&p).await.is_ok());
    let debugger = |target: &str| {
        serde_json::from_value(json!({
            "name": format!("dbg-{target}"), "image": "localhost/busybox:1.35",
            "targetContainerName": target
        }))
        .unwrap()
    };

    // A target that no longer runs: upstream's config error, and no container made.
    s.fake
        .exit_container(&s.fake.container_id("side").unwrap(), 0);
    p.spec.as_mut().unwrap().ephemeral_containers = Some(vec![debugger("side")]);
    let result = s.sync(&p).await;
    assert_eq!(
        result.waiting["dbg-side"],
        Waiting {
            reason: CREATE_CONTAINER_CONFIG_ERROR.into(),
            message: "unable to find target container side".into(),
        }
    );
    assert!(s.fake.container_id("dbg-side").is_none());

    // A running target: it starts, once; exited, it stays exited.
    p.spec.as_mut().unwrap().ephemeral_containers = Some(vec![debugger("app")]);
    assert!(s.sync(&p).await.is_ok());
    let dbg = s.fake.container_id("dbg-app").expect("dbg-app started");
    assert!(
        s.events("Started")
            .contains(&"Started container dbg-app".to_string())
    );
    let started = s.events("Started").len();
    s.fake.exit_container(&dbg, 1);
    assert!(s.sync(&p).await.is_ok());
    assert_eq!(s.fake.container_id("dbg-app"), Some(dbg));
    assert_eq!(s.events("Started").len(), started);
}

#[tokio::test]
async fn a_failed_dead_container_round_is_a_container_gc_failed_event_on_the_node() {
    let s = setup().await;
    s.fake.inject_error("ListContainers", "the runtime is down");
    let manager = Arc::new(s.manager);
    let task = tokio::spawn(crate::gc::run_node_gc(manager.clone()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let failed = loop {
        let failed: Vec<String> = s
            .events
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(reason, _)| reason == "node/ContainerGCFailed")
            .map(|(_, message)| message.clone())
            .collect();
        if !failed.is_empty() || std::time::Instant::now() > deadline {
            break failed;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    task.abort();
    assert_eq!(failed.len(), 1, "one Warning for the one failed round");
    assert!(failed[0].contains("the runtime is down"), "{failed:?}");
}
