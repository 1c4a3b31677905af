//! Container log rotation and cleanup.

use crate::support::{count, names, run_sandbox, start_container, ticking_clock};
use flate2::read::GzDecoder;
use kubelet_cri::fake::FakeRuntime;
use kubelet_logs::{ContainerLogManager, LogError};
use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const MAX_SIZE: u64 = 16;

fn manager(fake: &FakeRuntime, max_files: u32) -> ContainerLogManager {
    ContainerLogManager::new(Arc::new(fake.clone()), MAX_SIZE, max_files)
        .unwrap()
        .with_clock(ticking_clock())
}

fn gunzip(path: &Path) -> String {
    let mut text = String::new();
    GzDecoder::new(fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn fewer_than_two_files_is_refused() {
    let err = ContainerLogManager::new(Arc::new(FakeRuntime::new()), MAX_SIZE, 1).unwrap_err();
    assert!(matches!(err, LogError::InvalidMaxFiles(1)), "{err}");
}

#[tokio::test]
async fn log_below_max_size_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeRuntime::new();
    let sandbox = run_sandbox(&fake, dir.path()).await;
    let (_, log) = start_container(&fake, &sandbox, "app", "short\n").await;

    manager(&fake, 5).rotate_once().await.unwrap();

    assert_eq!(names(log.parent().unwrap()), ["0.log"]);
    assert_eq!(count(&fake.calls(), "ReopenContainerLog app"), 0);
}

#[tokio::test]
async fn log_at_max_size_is_renamed_and_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeRuntime::new();
    let sandbox = run_sandbox(&fake, dir.path()).await;
    let (_, log) = start_container(&fake, &sandbox, "app", "0123456789abcdef").await;
    let (_, quiet) = start_container(&fake, &sandbox, "quiet", "hi\n").await;
    fake.clear_calls();

    manager(&fake, 5).rotate_once().await.unwrap();

    // 2024-03-05T07:08:09Z, the first reading of the test clock.
    assert_eq!(names(log.parent().unwrap()), ["0.log.20240305-070809"]);
    assert_eq!(
        fs::read_to_string(log.with_file_name("0.log.20240305-070809")).unwrap(),
        "0123456789abcdef"
    );
    assert_eq!(fake.actions(), ["ReopenContainerLog app"]);
    assert_eq!(names(quiet.parent().unwrap()), ["0.log"]);
}

#[tokio::test]
async fn rotations_keep_max_files_and_compress_all_but_the_newest_copy() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeRuntime::new();
    let sandbox = run_sandbox(&fake, dir.path()).await;
    let (_, log) = start_container(&fake, &sandbox, "app", "first batch of lines\n").await;
    let manager = manager(&fake, 3);

    for batch in ["second", "third", "fourth"] {
        manager.rotate_once().await.unwrap();
        // The runtime's reopened file, filled past the limit again.
        fs::write(&log, format!("{batch} batch of lines\n")).unwrap();
    }

    let folder = log.parent().unwrap();
    assert_eq!(
        names(folder),
        ["0.log", "0.log.20240305-070810.gz", "0.log.20240305-070811"]
    );
    assert_eq!(
        gunzip(&folder.join("0.log.20240305-070810.gz")),
        "second batch of lines\n"
    );
    assert_eq!(
        fs::read_to_string(folder.join("0.log.20240305-070811")).unwrap(),
        "third batch of lines\n"
    );
    assert_eq!(count(&fake.calls(), "ReopenContainerLog app"), 3);
}

#[tokio::test]
async fn two_files_keep_only_the_newest_copy() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeRuntime::new();
    let sandbox = run_sandbox(&fake, dir.path()).await;
    let (_, log) = start_container(&fake, &sandbox, "app", "first batch of lines\n").await;
    let manager = manager(&fake, 2);

    manager.rotate_once().await.unwrap();
    fs::write(&log, "second batch of lines\n").unwrap();
    manager.rotate_once().await.unwrap();

    assert_eq!(names(log.parent().unwrap()), ["0.log.20240305-070810"]);
}

#[tokio::test]
async fn leftovers_of_an_interrupted_rotation_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeRuntime::new();
    let sandbox = run_sandbox(&fake, dir.path()).await;
    let (_, log) = start_container(&fake, &sandbox, "app", "0123456789abcdef").await;
    let folder = log.parent().unwrap();
    fs::write(folder.join("0.log.20240101-000000.tmp"), "partial gzip").unwrap();
    fs::write(folder.join("0.log.20240101-000001"), "already compressed").unwrap();
    fs::write(folder.join("0.log.20240101-000001.gz"), "gzip").unwrap();

    manager(&fake, 5).rotate_once().await.unwrap();

    assert_eq!(
        names(folder),
        ["0.log.20240101-000001.gz", "0.log.20240305-070809"]
    );
}

#[tokio::test]
async fn failed_reopen_moves_the_log_back_and_names_the_container() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeRuntime::new();
    let sandbox = run_sandbox(&fake, dir.path()).await;
    let (id, log) = start_container(&fake, &sandbox, "app", "0123456789abcdef").await;
    fake.inject_error("ReopenContainerLog", "shim is gone");

    let err = manager(&fake, 5).rotate_once().await.unwrap_err();

    let LogError::Rotation { errors } = &err else {
        panic!("unexpected error: {err}")
    };
    assert!(
        matches!(&errors[..], [LogError::ReopenLog { container_id, path, .. }] if *container_id == id && *path == log),
        "{err}"
    );
    assert!(err.to_string().contains("shim is gone"), "{err}");
    assert_eq!(names(log.parent().unwrap()), ["0.log"]);
    assert_eq!(fs::read_to_string(&log).unwrap(), "0123456789abcdef");
}

#[tokio::test]
async fn one_failing_container_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeRuntime::new();
    let sandbox = run_sandbox(&fake, dir.path()).await;
    let (_, first) = start_container(&fake, &sandbox, "first", "0123456789abcdef").await;
    let (_, second) = start_container(&fake, &sandbox, "second", "0123456789abcdef").await;
    fake.inject_error("ReopenContainerLog", "shim is gone");

    let err = manager(&fake, 5).rotate_once().await.unwrap_err();

    assert!(
        matches!(&err, LogError::Rotation { errors } if errors.len() == 1),
        "{err}"
    );
    assert_eq!(names(first.parent().unwrap()), ["0.log"]);
    assert_eq!(names(second.parent().unwrap()), ["0.log.20240305-070810"]);
}

#[tokio::test]
async fn exited_containers_are_not_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeRuntime::new();
    let sandbox = run_sandbox(&fake, dir.path()).await;
    let (id, log) = start_container(&fake, &sandbox, "app", "0123456789abcdef").await;
    fake.exit_container(&id, 0);

    manager(&fake, 5).rotate_once().await.unwrap();

    assert_eq!(names(log.parent().unwrap()), ["0.log"]);
}

#[tokio::test]
async fn missing_log_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeRuntime::new();
    let sandbox = run_sandbox(&fake, dir.path()).await;
    let (_, log) = start_container(&fake, &sandbox, "app", "").await;
    fs::remove_file(&log).unwrap();
    fake.clear_calls();

    let err = manager(&fake, 5).rotate_once().await.unwrap_err();

    // The fake opens no file, so the size check after the reopen names the missing log.
    assert_eq!(fake.actions(), ["ReopenContainerLog app"]);
    assert!(
        err.to_string().contains(&log.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn clean_removes_every_file_of_the_container_log() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeRuntime::new();
    let sandbox = run_sandbox(&fake, dir.path()).await;
    let (id, log) = start_container(&fake, &sandbox, "app", "0123456789abcdef").await;
    let manager = manager(&fake, 5);
    for _ in 0..2 {
        manager.rotate_once().await.unwrap();
        fs::write(&log, "0123456789abcdef").unwrap();
    }
    let folder = log.parent().unwrap();
    fs::write(folder.join("1.log"), "next attempt").unwrap();
    assert_eq!(names(folder).len(), 4);

    manager.clean(&id).await.unwrap();

    assert_eq!(names(folder), ["1.log"]);
}

#[tokio::test]
async fn clean_of_an_unknown_container_names_it() {
    let fake = FakeRuntime::new();

    let err = manager(&fake, 5).clean("0123456789ab").await.unwrap_err();

    assert!(
        matches!(&err, LogError::ContainerStatus { container_id, .. } if container_id == "0123456789ab"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn run_makes_a_pass_every_interval_until_shutdown() {
    let fake = FakeRuntime::new();
    let manager = manager(&fake, 5).with_monitor_interval(Duration::from_secs(10));

    manager
        .run(tokio::time::sleep(Duration::from_secs(25)))
        .await;

    // Passes at 0 s, 10 s and 20 s.
    assert_eq!(count(&fake.calls(), "ListContainers"), 3);
}
