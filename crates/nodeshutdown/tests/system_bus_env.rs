//! Without an explicit address the watcher uses DBUS_SYSTEM_BUS_ADDRESS. The variable is set
//! for this whole test process, so this binary holds this one test alone.

use std::time::Duration;

use kubelet_nodeshutdown::{ShutdownConfig, ShutdownWatcher};
use kubelet_testkit::logind::{BusDaemon, FakeHost};

#[tokio::test]
async fn the_system_bus_address_comes_from_the_environment() {
    let bus = BusDaemon::start();
    // SAFETY: the only test of this binary, set before the bus clients start any thread.
    unsafe { std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &bus.address) };
    let conf = tempfile::tempdir().unwrap();
    let mut host = FakeHost::serve(&bus.address, Duration::from_secs(60), conf.path(), true).await;

    let cfg = ShutdownConfig {
        logind_conf_dir: conf.path().to_path_buf(),
        ..ShutdownConfig::new(Duration::from_secs(30), Duration::from_secs(10))
    };
    assert_eq!(cfg.resolved_bus_address(), bus.address);
    let mut watcher = ShutdownWatcher::start(cfg).await.unwrap().unwrap();
    assert_eq!(host.inhibits().len(), 1);

    host.prepare_for_shutdown(true).await;
    let budget = tokio::time::timeout(Duration::from_secs(10), watcher.next_shutdown())
        .await
        .expect("PrepareForShutdown wakes the watcher")
        .unwrap();
    assert_eq!(budget.total(), Duration::from_secs(30));
    watcher.release();
    assert_eq!(host.next_release().await, 0);
}
