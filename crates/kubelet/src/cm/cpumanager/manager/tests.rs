use super::*;
use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubelet_config::Command;
use kubelet_cri::RuntimeService;
use kubelet_cri::api::{
    ContainerConfig, ContainerMetadata, ImageSpec, PodSandboxConfig, PodSandboxMetadata,
};
use kubelet_cri::fake::FakeRuntime;
use std::collections::BTreeMap;

fn config(root: &Path, extra: &[&str]) -> KubeletConfig {
    let args = [
        "--hostname-override=node".to_string(),
        format!("--root-dir={}", root.display()),
    ]
    .into_iter()
    .chain(extra.iter().map(|a| a.to_string()));
    match kubelet_config::parse_args(args) {
        Ok(Command::Run(cfg)) => *cfg,
        other => panic!("{other:?}"),
    }
}

fn pod(uid: &str, cpu: Option<&str>) -> Pod {
    let resources = cpu.map(|cpu| {
        let list = BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity("64Mi".into())),
        ]);
        ResourceRequirements {
            requests: Some(list.clone()),
            limits: Some(list),
            ..Default::default()
        }
    });
    Pod {
        metadata: ObjectMeta {
            uid: Some(uid.into()),
            name: Some(uid.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![PodContainer {
                name: "app".into(),
                resources,
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn static_manager(root: &Path) -> CpuManager {
    let cfg = config(root, &["--cpu-manager-policy=static", "--reserved-cpus=0"]);
    CpuManager::with_topology(&cfg, Some(CpuTopology::synthetic(1, 2, 1))).unwrap()
}

#[test]
fn guaranteed_container_gets_its_cpu_and_keeps_it_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let manager = static_manager(dir.path());
    let guaranteed = pod("g", Some("1"));
    let best_effort = pod("b", None);
    let app = |p: &Pod| p.spec.as_ref().unwrap().containers[0].clone();
    assert_eq!(
        manager
            .cpuset(&best_effort, &app(&best_effort))
            .unwrap()
            .as_deref(),
        Some("0-1")
    );
    assert_eq!(
        manager
            .cpuset(&guaranteed, &app(&guaranteed))
            .unwrap()
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        manager
            .cpuset(&best_effort, &app(&best_effort))
            .unwrap()
            .as_deref(),
        Some("0")
    );
    assert_eq!(manager.cpus("g", "app"), Some(CpuSet::from([1])));
    // Nothing left to give: CPU 0 is reserved.
    let second = pod("g2", Some("1"));
    assert!(manager.cpuset(&second, &app(&second)).is_err());

    let restarted = static_manager(dir.path());
    assert_eq!(restarted.cpus("g", "app"), Some(CpuSet::from([1])));
    assert_eq!(restarted.shared_cpus(), CpuSet::from([0]));

    // Still running, its CPU stays taken even though the pod is gone.
    let running = HashSet::from([("g".to_string(), "app".to_string())]);
    assert!(!restarted.remove_stale(std::slice::from_ref(&best_effort), &running));
    assert!(restarted.remove_stale(&[best_effort], &HashSet::new()));
    assert_eq!(restarted.shared_cpus(), CpuSet::from([0, 1]));
    assert_eq!(restarted.cpus("g", "app"), None);
}

#[test]
fn admission_assigns_init_then_app_containers_and_refuses_what_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let manager = static_manager(dir.path());
    // Two app containers of one CPU each, with one CPU to give: refused, nothing kept.
    let mut two = pod("two", Some("1"));
    let spec = two.spec.as_mut().unwrap();
    let mut second = spec.containers[0].clone();
    second.name = "second".into();
    spec.containers.push(second);
    let error = manager.admit(&two).unwrap_err();
    assert_eq!(
        error.admission(),
        (
            "UnexpectedAdmissionError",
            "Allocate failed due to not enough cpus available to satisfy request: requested=1, available=0, which is unexpected".to_string()
        )
    );
    assert_eq!(manager.cpus("two", "app"), None);
    assert_eq!(manager.shared_cpus(), CpuSet::from([0, 1]));

    // An init container's CPU is reused by the app container that follows it.
    let mut with_init = pod("init", Some("1"));
    let spec = with_init.spec.as_mut().unwrap();
    let mut init = spec.containers[0].clone();
    init.name = "setup".into();
    spec.init_containers = Some(vec![init]);
    manager.admit(&with_init).unwrap();
    assert_eq!(manager.cpus("init", "setup"), Some(CpuSet::from([1])));
    assert_eq!(manager.cpus("init", "app"), Some(CpuSet::from([1])));
    assert_eq!(manager.shared_cpus(), CpuSet::from([0]));
    // Creating the container later finds the same CPU.
    let app = with_init.spec.as_ref().unwrap().containers[0].clone();
    assert_eq!(
        manager.cpuset(&with_init, &app).unwrap().as_deref(),
        Some("1")
    );
}

#[test]
fn a_policy_change_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    static_manager(dir.path());
    let cfg = config(dir.path(), &[]);
    let err = CpuManager::with_topology(&cfg, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("configured policy \"none\" differs from state checkpoint policy \"static\""),
        "{err}"
    );
}

#[test]
fn the_none_policy_pins_nothing_and_writes_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CpuManager::with_topology(&config(dir.path(), &[]), None).unwrap();
    let p = pod("g", Some("1"));
    assert_eq!(
        manager
            .cpuset(&p, &p.spec.as_ref().unwrap().containers[0])
            .unwrap(),
        None
    );
    let text = std::fs::read_to_string(dir.path().join(checkpoint::FILE_NAME)).unwrap();
    assert!(
        text.starts_with(r#"{"policyName":"none","defaultCpuSet":"","checksum":"#),
        "{text}"
    );
}

#[test]
fn static_policy_needs_a_reservation_and_known_options() {
    let dir = tempfile::tempdir().unwrap();
    let topo = || Some(CpuTopology::synthetic(1, 2, 1));
    let cfg = config(dir.path(), &["--cpu-manager-policy=static"]);
    let err = CpuManager::with_topology(&cfg, topo()).err().unwrap();
    assert!(matches!(err, CpuManagerError::NoReservation), "{err}");
    let cfg = config(
        dir.path(),
        &[
            "--cpu-manager-policy=static",
            "--kube-reserved=cpu=500m",
            "--cpu-manager-policy-options=align-by-socket=true",
        ],
    );
    let err = CpuManager::with_topology(&cfg, topo())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("align-by-socket"), "{err}");
    // kube + system reserved cpu, rounded up: 0.5 + 0.2 is one CPU, taken by topology.
    let cfg = config(
        dir.path(),
        &[
            "--cpu-manager-policy=static",
            "--kube-reserved=cpu=500m",
            "--system-reserved=cpu=200m",
        ],
    );
    let manager = CpuManager::with_topology(&cfg, topo()).unwrap();
    let p = pod("g", Some("1"));
    assert_eq!(
        manager
            .cpuset(&p, &p.spec.as_ref().unwrap().containers[0])
            .unwrap()
            .as_deref(),
        Some("1")
    );
}

#[test]
fn reserved_cpus_replace_the_cpu_reservations() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        dir.path(),
        &[
            "--reserved-cpus=0-1",
            "--kube-reserved=cpu=3",
            "--system-reserved=cpu=1,memory=1Gi",
        ],
    );
    apply_reserved_cpus(&mut cfg).unwrap();
    assert_eq!(cfg.kube_reserved.get("cpu"), None);
    assert_eq!(
        cfg.system_reserved.get("cpu").map(String::as_str),
        Some("2")
    );
    assert_eq!(
        cfg.system_reserved.get("memory").map(String::as_str),
        Some("1Gi")
    );
}

async fn running_container(fake: &FakeRuntime, pod_uid: &str) -> String {
    fake.add_image("busybox");
    let sandbox_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: pod_uid.into(),
            namespace: "default".into(),
            uid: pod_uid.into(),
            attempt: 0,
        }),
        ..Default::default()
    };
    let sandbox = fake
        .run_pod_sandbox(sandbox_config.clone(), "")
        .await
        .unwrap();
    let config = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "app".into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        }),
        labels: [
            (POD_UID_LABEL.to_string(), pod_uid.to_string()),
            (CONTAINER_NAME_LABEL.to_string(), "app".to_string()),
        ]
        .into(),
        ..Default::default()
    };
    let id = fake
        .create_container(&sandbox, config, sandbox_config)
        .await
        .unwrap();
    fake.start_container(&id).await.unwrap();
    id
}

async fn cpuset_of(fake: &FakeRuntime, id: &str) -> String {
    let status = fake.container_status(id).await.unwrap();
    status
        .resources
        .and_then(|r| r.linux)
        .map(|l| l.cpuset_cpus)
        .unwrap_or_default()
}

#[tokio::test]
async fn reconcile_pushes_the_shared_pool_and_the_exclusive_cpus() {
    let dir = tempfile::tempdir().unwrap();
    let manager = static_manager(dir.path());
    let fake = FakeRuntime::new();
    let shared = running_container(&fake, "b").await;
    let exclusive = running_container(&fake, "g").await;
    let pods = vec![pod("b", None), pod("g", Some("1"))];
    let reconcile = |pods: Vec<Pod>| {
        let (manager, fake) = (&manager, &fake);
        async move {
            let containers = running_containers(fake).await.unwrap();
            manager.reconcile(fake, &pods, &containers).await;
        }
    };
    reconcile(pods.clone()).await;
    assert_eq!(cpuset_of(&fake, &shared).await, "0-1");
    manager
        .cpuset(&pods[1], &pods[1].spec.as_ref().unwrap().containers[0])
        .unwrap();
    reconcile(pods.clone()).await;
    assert_eq!(cpuset_of(&fake, &shared).await, "0");
    assert_eq!(cpuset_of(&fake, &exclusive).await, "1");
    // Unchanged sets are not pushed again.
    fake.clear_calls();
    reconcile(pods.clone()).await;
    assert!(
        !fake
            .calls()
            .iter()
            .any(|c| c.starts_with("UpdateContainerResources")),
        "{:?}",
        fake.calls()
    );
    // The Guaranteed pod ends and its container stops: its CPU returns to the shared pool.
    fake.stop_container(&exclusive, Duration::ZERO)
        .await
        .unwrap();
    manager.remove_stale(&pods[..1], &HashSet::new());
    reconcile(pods[..1].to_vec()).await;
    assert_eq!(cpuset_of(&fake, &shared).await, "0-1");
}
