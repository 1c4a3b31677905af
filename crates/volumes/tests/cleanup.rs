//! cleanup_pod and pods_on_disk: everything of a pod unmounted and removed from what is on
//! disk alone, never reaching through a mount or a symlink into the host.

mod common;

use common::*;
use kubelet_volumes::{VolumeError, VolumeManager};
use std::os::unix::fs::symlink;

#[test]
fn cleanup_removes_volumes_and_subpath_binds_and_is_idempotent() {
    let root = TestRoot::new();
    let host = root.outside();
    std::fs::create_dir(host.join("shared")).unwrap();
    std::fs::write(host.join("shared/keep"), b"host data").unwrap();
    let p = pod(
        vec![
            empty_dir("cache"),
            memory_dir("shm", Some("1Mi")),
            host_path("h", &host, "Directory"),
        ],
        vec![],
    );
    let volumes = root.manager.mount_blocking(&p).unwrap();
    let c = container(
        "app",
        vec![
            mount("cache", "/a", "x/y"),
            mount("shm", "/b", "z"),
            mount("h", "/c", "shared"),
        ],
    );
    root.manager.container_mounts(&p, &volumes, &c).unwrap();
    std::fs::write(
        volumes.get("cache").unwrap().host_path.join("x/y/file"),
        b"pod data",
    )
    .unwrap();
    // A link in a volume to host data must be removed as a link, not followed.
    symlink(
        &host,
        volumes.get("cache").unwrap().host_path.join("to-host"),
    )
    .unwrap();
    let base = std::fs::canonicalize(root.pod_dir()).unwrap();
    assert_eq!(
        mount_points()
            .iter()
            .filter(|m| m.starts_with(&base))
            .count(),
        4
    );
    assert_eq!(root.manager.pods_on_disk().unwrap(), vec![UID.to_owned()]);

    // As after a restart: a fresh manager that knows only the root dir and the uid.
    let restarted = VolumeManager::new(root.manager.root_dir().to_owned());
    restarted.cleanup_pod(UID).unwrap();
    assert!(!root.pod_dir().exists());
    assert!(
        !mount_points().iter().any(|m| m.starts_with(&base)),
        "a mount was left behind"
    );
    assert_eq!(
        std::fs::read(host.join("shared/keep")).unwrap(),
        b"host data",
        "cleanup reached into the hostPath"
    );
    assert!(restarted.pods_on_disk().unwrap().is_empty());

    restarted.cleanup_pod(UID).unwrap();
}

#[test]
fn cleanup_of_a_pod_dir_that_is_a_symlink_removes_only_the_link() {
    let root = TestRoot::new();
    let outside = root.outside();
    std::fs::write(outside.join("keep"), b"x").unwrap();
    std::fs::create_dir_all(root.pod_dir().parent().unwrap()).unwrap();
    symlink(&outside, root.pod_dir()).unwrap();
    root.manager.cleanup_pod(UID).unwrap();
    assert!(std::fs::symlink_metadata(root.pod_dir()).is_err());
    assert!(outside.join("keep").exists());
}

#[test]
fn cleanup_refuses_uids_that_are_not_one_component() {
    let root = TestRoot::new();
    for bad in ["", "..", "a/b"] {
        assert!(
            matches!(
                root.manager.cleanup_pod(bad),
                Err(VolumeError::InvalidPodUid(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn pods_on_disk_lists_pod_dirs_only() {
    let root = TestRoot::new();
    assert!(
        root.manager.pods_on_disk().unwrap().is_empty(),
        "no pods dir yet"
    );
    let pods = root.manager.root_dir().join("pods");
    for uid in ["b-uid", "a-uid"] {
        std::fs::create_dir_all(pods.join(uid)).unwrap();
    }
    std::fs::write(pods.join("stray-file"), b"").unwrap();
    assert_eq!(
        root.manager.pods_on_disk().unwrap(),
        vec!["a-uid".to_owned(), "b-uid".to_owned()]
    );
}
