//! Dangling /var/log/containers symlinks are collected, except those of living containers.

use crate::support::{run_sandbox, start_container};
use kubelet_cri::fake::FakeRuntime;
use kubelet_logs::{create_symlink, remove_dangling_symlinks, symlink_path};
use std::fs;

#[tokio::test]
async fn removes_links_to_missing_logs_of_exited_or_unknown_containers() {
    let dir = tempfile::tempdir().unwrap();
    let links = dir.path().join("containers");
    let fake = FakeRuntime::new();
    let sandbox = run_sandbox(&fake, &dir.path().join("pods")).await;
    let (running, running_log) = start_container(&fake, &sandbox, "running", "").await;
    let (exited, exited_log) = start_container(&fake, &sandbox, "exited", "").await;
    let (healthy, healthy_log) = start_container(&fake, &sandbox, "healthy", "").await;
    fake.exit_container(&exited, 0);
    for (name, id, log) in [
        ("running", &running, &running_log),
        ("exited", &exited, &exited_log),
        ("healthy", &healthy, &healthy_log),
    ] {
        create_symlink(&links, "web", "default", name, id, log).unwrap();
    }
    let unknown = symlink_path(&links, "gone", "default", "app", "abcdef012345");
    std::os::unix::fs::symlink(dir.path().join("nowhere.log"), &unknown).unwrap();
    // Mid-rotation for the running one; the exited one's pod logs were cleaned.
    fs::remove_file(&running_log).unwrap();
    fs::remove_file(&exited_log).unwrap();

    let mut removed = remove_dangling_symlinks(&fake, &links).await.unwrap();

    removed.sort();
    let mut expected = vec![
        symlink_path(&links, "web", "default", "exited", &exited),
        unknown,
    ];
    expected.sort();
    assert_eq!(removed, expected);
    for (name, id) in [("running", &running), ("healthy", &healthy)] {
        let link = symlink_path(&links, "web", "default", name, id);
        assert!(
            fs::symlink_metadata(&link).is_ok(),
            "{} is gone",
            link.display()
        );
    }
    for link in &expected {
        assert!(
            fs::symlink_metadata(link).is_err(),
            "{} is left",
            link.display()
        );
    }
}

#[tokio::test]
async fn missing_folder_has_nothing_to_remove() {
    let dir = tempfile::tempdir().unwrap();
    let removed = remove_dangling_symlinks(&FakeRuntime::new(), &dir.path().join("absent"))
        .await
        .unwrap();
    assert!(removed.is_empty());
}
