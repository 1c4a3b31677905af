//! Probe errors, the metric, and the kill grace period.

use super::*;
use crate::{ProbeType, kill_grace_period};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

#[tokio::test(start_paused = true)]
async fn a_probe_that_cannot_run_is_retried_then_discarded() {
    let h = Harness::new().await;
    let mut probe = exec_probe("live");
    probe.failure_threshold = Some(1);
    let mut app = container("app");
    app.liveness_probe = Some(probe);
    for _ in 0..3 {
        h.fake.inject_error("ExecSync", "runtime is busy");
    }
    let run = h.start("app", 0).await;
    h.manager
        .sync_pod(&pod(vec![app]), from_ref(&run), Some("10.88.0.2"));

    pass(0.5).await;
    assert_eq!(h.execs("live"), 3, "three attempts");
    assert!(
        !h.manager.liveness_failed(POD_UID, &run.id),
        "an error is not a failure"
    );
    let events = h.events.all();
    assert_eq!(events.len(), 1);
    assert!(
        events[0]
            .1
            .starts_with("Liveness probe errored: exec probe: ")
            && events[0].1.contains("runtime is busy"),
        "{events:?}"
    );
    pass(1.0).await;
    assert_eq!(h.execs("live"), 4, "the next tick probes normally");
}

fn scrape(manager: &crate::ProbeManager) -> String {
    let mut registry = Registry::default();
    manager.register_metrics(&mut registry);
    let mut text = String::new();
    encode(&mut text, &registry).expect("metrics encode");
    text
}

#[tokio::test(start_paused = true)]
async fn results_are_counted_per_worker_and_dropped_with_it() {
    let h = Harness::new().await;
    let mut app = container("app");
    app.readiness_probe = Some(exec_probe("ready"));
    let run = h.start("app", 0).await;
    h.manager
        .sync_pod(&pod(vec![app]), &[run], Some("10.88.0.2"));
    pass(1.5).await;
    h.fake.set_exec_result("app", exit_code(1));
    pass(1.0).await;

    let text = scrape(&h.manager);
    let labels = r#"container="app",pod="web",namespace="default",pod_uid="uid-web""#;
    assert!(
        text.contains(&format!(
            "prober_probe_total{{probe_type=\"Readiness\",result=\"successful\",{labels}}} 2"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "prober_probe_total{{probe_type=\"Readiness\",result=\"failed\",{labels}}} 1"
        )),
        "{text}"
    );

    h.manager.remove_pod(POD_UID);
    assert!(
        !scrape(&h.manager).contains("probe_type="),
        "series of stopped workers go"
    );
}

#[test]
fn the_probe_grace_period_applies_to_liveness_and_startup_kills() {
    let mut app = container("app");
    let mut liveness = exec_probe("live");
    liveness.termination_grace_period_seconds = Some(5);
    app.liveness_probe = Some(liveness);
    app.startup_probe = Some(exec_probe("start"));
    let mut spec = pod(vec![app]);

    assert_eq!(
        kill_grace_period(&spec, "app", ProbeType::Liveness),
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        kill_grace_period(&spec, "app", ProbeType::Startup),
        None,
        "not set"
    );
    assert_eq!(kill_grace_period(&spec, "app", ProbeType::Readiness), None);
    assert_eq!(kill_grace_period(&spec, "other", ProbeType::Liveness), None);

    spec.metadata.deletion_grace_period_seconds = Some(30);
    assert_eq!(
        kill_grace_period(&spec, "app", ProbeType::Liveness),
        None,
        "a pod being deleted keeps its deletion grace period"
    );
}
