//! Startup gating, manual triggers, which containers get workers, and when they stop.

use super::*;
use crate::ProbeResult;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn gated_app() -> Container {
    let mut app = container("app");
    let mut startup = exec_probe("start");
    startup.failure_threshold = Some(30);
    app.startup_probe = Some(startup);
    app.liveness_probe = Some(exec_probe("live"));
    app.readiness_probe = Some(exec_probe("ready"));
    app
}

#[tokio::test(start_paused = true)]
async fn a_startup_probe_holds_back_liveness_and_readiness() {
    let h = Harness::new().await;
    h.fake.set_exec_result("app", exit_code(1));
    let run = h.start("app", 0).await;
    h.manager
        .sync_pod(&pod(vec![gated_app()]), from_ref(&run), Some("10.88.0.2"));

    pass(5.5).await;
    assert_eq!(h.execs("start"), 6);
    assert_eq!((h.execs("live"), h.execs("ready")), (0, 0), "held back");
    assert!(!h.manager.started(POD_UID, &run.id));
    assert!(!h.manager.readiness(POD_UID, &run.id));
    assert!(
        !h.manager.startup_failed(POD_UID, &run.id),
        "6 failures of 30"
    );

    h.fake.set_exec_result("app", exit_code(0));
    pass(1.0).await;
    assert!(h.manager.started(POD_UID, &run.id));
    pass(1.0).await;
    assert!(h.execs("live") >= 1 && h.execs("ready") >= 1, "released");
    assert!(h.manager.readiness(POD_UID, &run.id));
    let starts = h.execs("start");
    pass(10.0).await;
    assert_eq!(
        h.execs("start"),
        starts,
        "a started container is not probed for startup"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_startup_probe_triggers_and_holds() {
    let h = Harness::new().await;
    let mut app = gated_app();
    app.startup_probe.as_mut().unwrap().failure_threshold = Some(2);
    h.fake.set_exec_result("app", exit_code(1));
    let run = h.start("app", 0).await;
    h.manager
        .sync_pod(&pod(vec![app]), from_ref(&run), Some("10.88.0.2"));

    pass(1.5).await;
    assert!(h.manager.startup_failed(POD_UID, &run.id));
    assert!(!h.manager.started(POD_UID, &run.id));
    assert!(
        !h.manager.liveness_failed(POD_UID, &run.id),
        "liveness never ran"
    );
    pass(10.0).await;
    assert_eq!(h.execs("start"), 2, "on hold");
    assert_eq!(h.events.all()[0].1, "Startup probe failed: exit 1\n");
}

#[tokio::test(start_paused = true)]
async fn containers_without_probes_are_started_and_ready() {
    let h = Harness::new().await;
    let run = h.start("app", 0).await;
    h.manager.sync_pod(
        &pod(vec![container("app")]),
        from_ref(&run),
        Some("10.88.0.2"),
    );

    assert!(h.manager.started(POD_UID, &run.id));
    assert!(h.manager.readiness(POD_UID, &run.id));
    assert!(!h.manager.liveness_failed(POD_UID, &run.id));
    assert!(
        !h.manager.readiness(POD_UID, "not-running"),
        "only running containers are ready"
    );
    assert!(!h.manager.started("other-pod", &run.id));
}

#[tokio::test(start_paused = true)]
async fn asking_for_readiness_probes_now() {
    let h = Harness::new().await;
    let mut probe = exec_probe("ready");
    probe.period_seconds = Some(60);
    let mut app = container("app");
    app.readiness_probe = Some(probe);
    h.fake.set_exec_result("app", exit_code(1));
    let run = h.start("app", 0).await;
    h.manager
        .sync_pod(&pod(vec![app]), from_ref(&run), Some("10.88.0.2"));
    pass(0.5).await;
    assert_eq!(h.execs("ready"), 1);

    h.fake.set_exec_result("app", exit_code(0));
    assert!(!h.manager.readiness(POD_UID, &run.id));
    pass(0.5).await;
    assert_eq!(h.execs("ready"), 2, "probed without waiting for the period");
    assert!(h.manager.readiness(POD_UID, &run.id));
}

#[tokio::test(start_paused = true)]
async fn deleting_a_pod_ends_liveness_and_startup_probing() {
    let h = Harness::new().await;
    let mut app = container("app");
    app.liveness_probe = Some(exec_probe("live"));
    app.readiness_probe = Some(exec_probe("ready"));
    let mut spec = pod(vec![app]);
    let run = h.start("app", 0).await;
    h.manager.sync_pod(&spec, from_ref(&run), Some("10.88.0.2"));
    pass(0.5).await;
    h.fake.set_exec_result("app", exit_code(1));

    spec.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
    h.manager.sync_pod(&spec, from_ref(&run), Some("10.88.0.2"));
    pass(10.0).await;
    assert_eq!(
        h.execs("live"),
        1,
        "no liveness probes while the pod shuts down"
    );
    assert!(!h.manager.liveness_failed(POD_UID, &run.id));
    assert!(h.execs("ready") > 1, "readiness goes on");
    assert!(!h.manager.readiness(POD_UID, &run.id));
}

#[tokio::test(start_paused = true)]
async fn workers_stop_with_their_container_and_their_pod() {
    let h = Harness::new().await;
    let mut app = container("app");
    app.readiness_probe = Some(exec_probe("ready"));
    let spec = pod(vec![app]);
    let run = h.start("app", 0).await;
    h.manager.sync_pod(&spec, from_ref(&run), Some("10.88.0.2"));
    pass(2.5).await;
    assert_eq!(h.execs("ready"), 3);

    h.manager.sync_pod(&spec, &[], Some("10.88.0.2"));
    pass(5.0).await;
    assert_eq!(h.execs("ready"), 3, "not running: not probed");
    assert_eq!(
        h.manager
            .result(POD_UID, &run.id, crate::ProbeType::Readiness),
        None
    );

    h.manager.sync_pod(&spec, from_ref(&run), Some("10.88.0.2"));
    pass(0.5).await;
    assert_eq!(h.execs("ready"), 4);
    h.manager.remove_pod(POD_UID);
    pass(5.0).await;
    assert_eq!(h.execs("ready"), 4, "removed pods are not probed");
    assert!(!h.manager.readiness(POD_UID, &run.id));
}

#[tokio::test(start_paused = true)]
async fn sidecars_are_probed_and_plain_init_containers_are_not() {
    let h = Harness::new().await;
    let mut sidecar = container("proxy");
    sidecar.restart_policy = Some("Always".into());
    sidecar.startup_probe = Some(exec_probe("proxy-start"));
    let mut init = container("setup");
    init.readiness_probe = Some(exec_probe("setup-ready"));
    let mut spec = pod(vec![container("app")]);
    spec.spec.as_mut().unwrap().init_containers = Some(vec![init, sidecar]);
    let setup = h.start("setup", 0).await;
    let proxy = h.start("proxy", 0).await;
    h.manager
        .sync_pod(&spec, &[setup, proxy.clone()], Some("10.88.0.2"));

    pass(0.5).await;
    assert_eq!(h.execs("setup-ready"), 0);
    assert_eq!(h.execs("proxy-start"), 1);
    assert!(h.manager.started(POD_UID, &proxy.id));
    assert_eq!(
        h.manager
            .result(POD_UID, &proxy.id, crate::ProbeType::Startup),
        Some(ProbeResult::Success)
    );
}
