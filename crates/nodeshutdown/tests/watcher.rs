//! The shutdown watcher against a fake logind on a private dbus-daemon.

use std::path::Path;
use std::time::Duration;

use kubelet_nodeshutdown::{ShutdownBudget, ShutdownConfig, ShutdownError, ShutdownWatcher};
use kubelet_testkit::logind::{BusDaemon, FakeHost, InhibitCall};

fn config(bus: &BusDaemon, conf_dir: &Path, grace: u64, critical: u64) -> ShutdownConfig {
    ShutdownConfig {
        bus_address: Some(bus.address.clone()),
        logind_conf_dir: conf_dir.to_path_buf(),
        ..ShutdownConfig::new(Duration::from_secs(grace), Duration::from_secs(critical))
    }
}

fn kubelet_lock() -> InhibitCall {
    InhibitCall {
        what: "shutdown".into(),
        who: "kubelet".into(),
        why: "Kubelet needs time to handle node shutdown".into(),
        mode: "delay".into(),
    }
}

async fn start(cfg: ShutdownConfig) -> ShutdownWatcher {
    ShutdownWatcher::start(cfg)
        .await
        .expect("watcher starts")
        .expect("feature is on")
}

#[tokio::test]
async fn takes_the_lock_and_wakes_on_shutdown_with_the_budget() {
    let bus = BusDaemon::start();
    let conf = tempfile::tempdir().unwrap();
    let mut host = FakeHost::serve(&bus.address, Duration::from_secs(60), conf.path(), true).await;
    let mut watcher = start(config(&bus, conf.path(), 30, 10)).await;

    assert_eq!(host.inhibits(), [kubelet_lock()]);
    assert!(
        !conf.path().join("99-kubelet.conf").exists(),
        "a long enough delay needs no override"
    );
    let shutting_down = watcher.shutting_down();
    assert!(!*shutting_down.borrow());

    host.prepare_for_shutdown(true).await;
    let budget = tokio::time::timeout(Duration::from_secs(10), watcher.next_shutdown())
        .await
        .expect("PrepareForShutdown wakes the watcher")
        .unwrap();
    assert_eq!(
        budget,
        ShutdownBudget {
            non_critical: Duration::from_secs(20),
            critical: Duration::from_secs(10),
        }
    );
    assert!(*shutting_down.borrow());
    assert!(
        host.none_released_within(Duration::from_millis(300)).await,
        "the lock holds until the pods are stopped"
    );

    watcher.release();
    assert_eq!(host.next_release().await, 0, "release closes the lock's fd");
}

#[tokio::test]
async fn a_cancelled_shutdown_takes_the_lock_again() {
    let bus = BusDaemon::start();
    let conf = tempfile::tempdir().unwrap();
    let mut host = FakeHost::serve(&bus.address, Duration::from_secs(60), conf.path(), true).await;
    let mut watcher = start(config(&bus, conf.path(), 20, 5)).await;
    let shutting_down = watcher.shutting_down();

    host.prepare_for_shutdown(true).await;
    watcher.next_shutdown().await.unwrap();
    watcher.release();
    assert_eq!(host.next_release().await, 0);

    let waiting = tokio::spawn(async move {
        let budget = watcher.next_shutdown().await;
        (watcher, budget)
    });
    host.prepare_for_shutdown(false).await;
    wait_for(|| host.inhibits().len() == 2).await;
    assert_eq!(host.inhibits(), [kubelet_lock(), kubelet_lock()]);
    assert!(!*shutting_down.borrow());
    assert!(!waiting.is_finished(), "a cancellation is not a shutdown");

    host.prepare_for_shutdown(true).await;
    let (mut watcher, budget) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the second shutdown wakes the watcher")
        .unwrap();
    assert_eq!(budget.unwrap().total(), Duration::from_secs(20));
    watcher.release();
    assert_eq!(
        host.next_release().await,
        1,
        "the re-taken lock is the one released"
    );
}

#[tokio::test]
async fn a_cancellation_while_locked_replaces_the_lock() {
    let bus = BusDaemon::start();
    let conf = tempfile::tempdir().unwrap();
    let mut host = FakeHost::serve(&bus.address, Duration::from_secs(60), conf.path(), true).await;
    let mut watcher = start(config(&bus, conf.path(), 20, 5)).await;

    host.prepare_for_shutdown(false).await;
    host.prepare_for_shutdown(true).await;
    watcher.next_shutdown().await.unwrap();
    assert_eq!(host.inhibits().len(), 2);
    assert_eq!(
        host.next_release().await,
        0,
        "the first lock closes once replaced"
    );
    assert!(host.none_released_within(Duration::from_millis(300)).await);
    watcher.release();
    assert_eq!(host.next_release().await, 1);
}

#[tokio::test]
async fn a_short_inhibit_delay_is_raised_through_a_drop_in_and_a_logind_reload() {
    let bus = BusDaemon::start();
    let conf = tempfile::tempdir().unwrap();
    let conf_dir = conf.path().join("logind.conf.d");
    let host = FakeHost::serve(&bus.address, Duration::from_secs(5), &conf_dir, true).await;
    let _watcher = start(config(&bus, &conf_dir, 45, 15)).await;

    assert_eq!(
        std::fs::read_to_string(conf_dir.join("99-kubelet.conf")).unwrap(),
        "# Kubelet logind override\n[Login]\nInhibitDelayMaxSec=45\n"
    );
    let state = host.state.lock().unwrap();
    assert_eq!(
        state.kill_unit_calls,
        [("systemd-logind.service".to_string(), "all".to_string(), 1)]
    );
    assert_eq!(state.inhibit_delay_usec, 45_000_000);
    assert_eq!(state.inhibits, [kubelet_lock()]);
}

#[tokio::test]
async fn a_logind_that_keeps_a_short_delay_fails_the_start_without_a_lock() {
    let bus = BusDaemon::start();
    let conf = tempfile::tempdir().unwrap();
    let host = FakeHost::serve(&bus.address, Duration::from_secs(5), conf.path(), false).await;
    let err = ShutdownWatcher::start(config(&bus, conf.path(), 30, 10))
        .await
        .unwrap_err();

    assert!(
        matches!(
            &err,
            ShutdownError::InhibitDelayTooShort { current, requested, .. }
                if *current == Duration::from_secs(5) && *requested == Duration::from_secs(30)
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&bus.address), "{err}");
    assert!(host.inhibits().is_empty());
}

#[tokio::test]
async fn zero_grace_period_never_touches_the_bus() {
    let conf = tempfile::tempdir().unwrap();
    let cfg = ShutdownConfig {
        bus_address: Some(format!(
            "unix:path={}",
            conf.path().join("no-bus").display()
        )),
        logind_conf_dir: conf.path().join("logind.conf.d"),
        ..ShutdownConfig::new(Duration::ZERO, Duration::ZERO)
    };
    assert!(ShutdownWatcher::start(cfg.clone()).await.unwrap().is_none());

    let critical_above_the_whole = ShutdownConfig {
        grace_period: Duration::from_secs(10),
        critical_grace_period: Duration::from_secs(20),
        ..cfg
    };
    assert!(
        ShutdownWatcher::start(critical_above_the_whole)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!conf.path().join("logind.conf.d").exists());
}

#[tokio::test]
async fn an_unreachable_bus_names_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("unix:path={}", dir.path().join("no-bus").display());
    let cfg = ShutdownConfig {
        bus_address: Some(address.clone()),
        logind_conf_dir: dir.path().to_path_buf(),
        ..ShutdownConfig::new(Duration::from_secs(30), Duration::from_secs(10))
    };
    let err = ShutdownWatcher::start(cfg).await.unwrap_err();
    assert!(matches!(err, ShutdownError::Connect { .. }), "{err}");
    assert!(err.to_string().contains(&address), "{err}");
}

#[tokio::test]
async fn a_bus_without_logind_names_the_call_and_address() {
    let bus = BusDaemon::start();
    let conf = tempfile::tempdir().unwrap();
    let err = ShutdownWatcher::start(config(&bus, conf.path(), 30, 10))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("InhibitDelayMaxUSec"), "{message}");
    assert!(message.contains(&bus.address), "{message}");
}

async fn wait_for(mut condition: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("condition met within 10 s");
}

#[tokio::test]
async fn a_lost_bus_ends_the_wait_with_an_error_naming_it() {
    let mut bus = BusDaemon::start();
    let conf = tempfile::tempdir().unwrap();
    let _host = FakeHost::serve(&bus.address, Duration::from_secs(60), conf.path(), true).await;
    let mut watcher = start(config(&bus, conf.path(), 30, 10)).await;

    bus.kill();
    let err = tokio::time::timeout(Duration::from_secs(10), watcher.next_shutdown())
        .await
        .expect("a lost bus ends the wait")
        .unwrap_err();
    assert!(
        matches!(err, ShutdownError::SignalStreamEnded { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&bus.address), "{err}");
}
