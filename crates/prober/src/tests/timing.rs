//! Initial delay, period, jitter, thresholds, on-hold and timeouts.

use super::*;
use crate::{ProbeResult, ProbeType};

#[tokio::test(start_paused = true)]
async fn initial_delay_counts_from_the_container_start() {
    let h = Harness::new().await;
    let mut probe = exec_probe("ready");
    probe.initial_delay_seconds = Some(5);
    let mut app = container("app");
    app.readiness_probe = Some(probe);
    let run = h.start("app", 0).await;
    pass(2.0).await;
    h.manager
        .sync_pod(&pod(vec![app]), from_ref(&run), Some("10.88.0.2"));

    pass(2.5).await;
    assert_eq!(
        h.execs("ready"),
        0,
        "4.5 s after the start: still in the initial delay"
    );
    assert!(!h.manager.readiness(POD_UID, &run.id));
    pass(1.0).await;
    assert_eq!(h.execs("ready"), 1, "probed at 5 s");
    assert!(h.manager.readiness(POD_UID, &run.id));
}

#[tokio::test(start_paused = true)]
async fn probes_every_period() {
    let h = Harness::new().await;
    let mut probe = exec_probe("ready");
    probe.period_seconds = Some(10);
    let mut app = container("app");
    app.readiness_probe = Some(probe);
    let run = h.start("app", 0).await;
    h.manager
        .sync_pod(&pod(vec![app]), &[run], Some("10.88.0.2"));

    pass(0.5).await;
    assert_eq!(h.execs("ready"), 1, "the first probe runs at once");
    pass(9.0).await;
    assert_eq!(h.execs("ready"), 1);
    pass(1.0).await;
    assert_eq!(h.execs("ready"), 2);
    pass(20.0).await;
    assert_eq!(h.execs("ready"), 4);
}

#[tokio::test(start_paused = true)]
async fn first_probes_spread_over_one_period_after_a_kubelet_start() {
    let h = Harness::fresh().await;
    let mut probe = exec_probe("ready");
    probe.period_seconds = Some(10);
    let mut app = container("app");
    app.readiness_probe = Some(probe);
    let run = h.start("app", 0).await;
    // The worker draws its delay from this thread's generator: draw the same number here.
    fastrand::seed(7);
    let jitter = 10.0 * fastrand::f64();
    fastrand::seed(7);
    h.manager
        .sync_pod(&pod(vec![app]), &[run], Some("10.88.0.2"));

    pass(jitter - 0.01).await;
    assert_eq!(h.execs("ready"), 0, "waits {jitter:.2} s");
    pass(0.02).await;
    assert_eq!(h.execs("ready"), 1);
    pass(10.0).await;
    assert_eq!(h.execs("ready"), 2, "then probes every period");
}

#[tokio::test(start_paused = true)]
async fn success_and_failure_thresholds_need_results_in_a_row() {
    let mut h = Harness::new().await;
    let mut probe = exec_probe("ready");
    probe.success_threshold = Some(3);
    probe.failure_threshold = Some(2);
    let mut app = container("app");
    app.readiness_probe = Some(probe);
    let run = h.start("app", 0).await;
    h.manager
        .sync_pod(&pod(vec![app]), from_ref(&run), Some("10.88.0.2"));
    // Read the stored result: asking readiness() would trigger extra probes.
    let ready =
        || h.manager.result(POD_UID, &run.id, ProbeType::Readiness) == Some(ProbeResult::Success);

    pass(0.5).await;
    assert!(!ready(), "1 success of 3");
    pass(1.0).await;
    assert!(!ready(), "2 successes of 3");
    pass(1.0).await;
    assert!(ready(), "3 successes");

    h.fake.set_exec_result("app", exit_code(1));
    pass(1.0).await;
    assert!(ready(), "1 failure of 2");
    pass(1.0).await;
    assert!(!ready(), "2 failures");

    let results: Vec<_> = h.drain_updates().into_iter().map(|u| u.result).collect();
    assert_eq!(
        results,
        [
            ProbeResult::Failure,
            ProbeResult::Success,
            ProbeResult::Failure
        ],
        "not ready at first, then each change once"
    );
    let failed = "Readiness probe failed: exit 1\n".to_string();
    assert_eq!(
        h.events.all(),
        [
            (crate::events::UNHEALTHY.to_string(), failed.clone()),
            (crate::events::UNHEALTHY.to_string(), failed)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn liveness_failure_holds_the_worker_until_a_new_container() {
    let mut h = Harness::new().await;
    let mut app = container("app");
    app.liveness_probe = Some(exec_probe("live"));
    let spec = pod(vec![app]);
    h.fake.set_exec_result("app", exit_code(1));
    let first = h.start("app", 0).await;
    h.manager
        .sync_pod(&spec, from_ref(&first), Some("10.88.0.2"));

    pass(0.5).await;
    assert!(
        !h.manager.liveness_failed(POD_UID, &first.id),
        "1 failure of 3"
    );
    pass(1.0).await;
    assert!(
        !h.manager.liveness_failed(POD_UID, &first.id),
        "2 failures of 3"
    );
    pass(1.0).await;
    assert!(h.manager.liveness_failed(POD_UID, &first.id), "3 failures");
    assert_eq!(
        h.events.all().len(),
        3,
        "an Unhealthy event per failed probe"
    );
    assert_eq!(
        h.events.all()[0].1,
        "Liveness probe failed: exit 1\n",
        "upstream's message"
    );

    pass(30.0).await;
    assert_eq!(
        h.execs("live"),
        3,
        "on hold: no probes of a container being killed"
    );
    h.manager
        .sync_pod(&spec, from_ref(&first), Some("10.88.0.2"));
    pass(5.0).await;
    assert_eq!(
        h.execs("live"),
        3,
        "the same container keeps the worker on hold"
    );
    assert!(h.manager.liveness_failed(POD_UID, &first.id));

    // The kubelet killed and restarted it: a new id resets the result and resumes probing.
    h.drain_updates();
    let second = h.start("app", 1).await;
    h.manager
        .sync_pod(&spec, from_ref(&second), Some("10.88.0.2"));
    assert!(
        !h.manager.liveness_failed(POD_UID, &second.id),
        "alive until proven dead"
    );
    assert!(
        !h.manager.liveness_failed(POD_UID, &first.id),
        "the old result is gone"
    );
    let update = h.drain_updates().pop().expect("the reset is announced");
    assert_eq!(
        (update.container_id, update.result),
        (second.id.clone(), ProbeResult::Success)
    );
    pass(0.5).await;
    assert_eq!(h.execs("live"), 4);
    pass(2.0).await;
    assert!(h.manager.liveness_failed(POD_UID, &second.id));
}

#[tokio::test(start_paused = true)]
async fn an_exec_probe_that_times_out_fails() {
    let h = Harness::new().await;
    let mut probe = exec_probe("live");
    probe.timeout_seconds = Some(2);
    probe.failure_threshold = Some(1);
    probe.period_seconds = Some(10);
    let mut app = container("app");
    app.liveness_probe = Some(probe);
    h.fake.set_exec_hangs("app");
    let run = h.start("app", 0).await;
    h.manager
        .sync_pod(&pod(vec![app]), from_ref(&run), Some("10.88.0.2"));

    pass(1.9).await;
    assert!(
        !h.manager.liveness_failed(POD_UID, &run.id),
        "still waiting for the command"
    );
    pass(0.2).await;
    assert!(
        h.manager.liveness_failed(POD_UID, &run.id),
        "timed out after 2 s"
    );
    assert_eq!(
        h.events.all(),
        [(
            crate::events::UNHEALTHY.to_string(),
            "Liveness probe failed: command \"live\" timed out".to_string()
        )]
    );
}
