//! mount_pod_volumes against the real kernel: emptyDir on disk and in memory, hostPath type
//! checks, unsupported types, and all-or-nothing rollback.

mod common;

use common::*;
use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Volume};
use kubelet_volumes::{SetupError, VolumeError};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;

#[test]
fn empty_dir_on_disk_is_a_world_writable_dir() {
    let root = TestRoot::new();
    let volumes = root
        .manager
        .mount_blocking(&pod(vec![empty_dir("cache")], vec![]))
        .unwrap();
    let expected = root.pod_dir().join("volumes/kubernetes.io~empty-dir/cache");
    let cache = volumes.get("cache").unwrap();
    assert_eq!(cache.host_path, expected);
    assert!(!cache.read_only);
    let meta = std::fs::metadata(&expected).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.permissions().mode() & 0o777, 0o777);
    assert!(
        mounts_at(&expected).is_empty(),
        "a disk emptyDir must not be a mount"
    );
}

#[test]
fn empty_dir_in_memory_is_a_sized_tmpfs_mounted_once() {
    let root = TestRoot::new();
    let p = pod(
        vec![memory_dir("shm", Some("64Mi")), memory_dir("unsized", None)],
        vec![],
    );
    let volumes = root.manager.mount_blocking(&p).unwrap();
    let shm = volumes.get("shm").unwrap().host_path.clone();
    let mounts = mounts_at(&shm);
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(mounts[0].0, "tmpfs");
    assert!(
        mounts[0].1.split(',').any(|o| o == "size=65536k"),
        "{mounts:?}"
    );
    let default_size = mounts_at(&volumes.get("unsized").unwrap().host_path);
    assert_eq!(default_size.len(), 1);
    assert!(
        !default_size[0].1.contains("size=65536k"),
        "kernel default size expected: {default_size:?}"
    );
    let canonical = std::fs::canonicalize(&shm).unwrap();
    let opts = mount_lines()
        .into_iter()
        .find(|f| std::path::Path::new(&f[4]) == canonical)
        .unwrap()[5]
        .clone();
    assert!(opts.contains("nosuid") && opts.contains("nodev"), "{opts}");

    std::fs::write(shm.join("data"), b"kept").unwrap();
    let again = root.manager.mount_blocking(&p).unwrap();
    assert_eq!(again, volumes);
    assert_eq!(mounts_at(&shm).len(), 1, "re-mount stacked a second tmpfs");
    assert_eq!(std::fs::read(shm.join("data")).unwrap(), b"kept");
}

#[test]
fn empty_dir_on_disk_survives_a_resync() {
    let root = TestRoot::new();
    let p = pod(vec![empty_dir("cache")], vec![]);
    let first = root.manager.mount_blocking(&p).unwrap();
    let path = first.get("cache").unwrap().host_path.clone();
    std::fs::write(path.join("f"), b"x").unwrap();
    assert_eq!(root.manager.mount_blocking(&p).unwrap(), first);
    assert_eq!(std::fs::read(path.join("f")).unwrap(), b"x");
}

#[test]
fn invalid_size_limit_is_refused_before_any_setup() {
    let root = TestRoot::new();
    let err = root
        .manager
        .mount_blocking(&pod(
            vec![empty_dir("a"), memory_dir("shm", Some("lots"))],
            vec![],
        ))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "volume \"shm\": invalid emptyDir sizeLimit \"lots\""
    );
    assert!(!root.pod_dir().exists());
}

fn check(root: &TestRoot, path: &std::path::Path, type_: &str) -> Result<PathBuf, VolumeError> {
    let volumes = root
        .manager
        .mount_blocking(&pod(vec![host_path("h", path, type_)], vec![]))?;
    Ok(volumes.get("h").unwrap().host_path.clone())
}

fn check_err(root: &TestRoot, path: &std::path::Path, type_: &str) -> String {
    check(root, path, type_).unwrap_err().to_string()
}

#[test]
fn host_path_is_used_in_place_without_checks_when_untyped() {
    let root = TestRoot::new();
    let missing = root.outside().join("not-there");
    assert_eq!(check(&root, &missing, "").unwrap(), missing);
    assert!(!missing.exists(), "an untyped hostPath is not created");
}

#[test]
fn host_path_directory_types() {
    let root = TestRoot::new();
    let dir = root.outside();
    let file = dir.join("file");
    std::fs::write(&file, b"").unwrap();

    assert_eq!(check(&root, &dir, "Directory").unwrap(), dir);
    assert_eq!(
        check_err(&root, &file, "Directory"),
        format!(
            "volume \"h\": hostPath type check failed: {} is not a directory, it's a File",
            file.display()
        )
    );
    let missing = dir.join("nope");
    assert_eq!(
        check_err(&root, &missing, "Directory"),
        format!("volume \"h\": hostPath {} doesn't exist", missing.display())
    );

    let created = dir.join("a/b");
    assert_eq!(
        check(&root, &created, "DirectoryOrCreate").unwrap(),
        created
    );
    assert!(created.is_dir());
    assert_eq!(
        std::fs::metadata(&created).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert!(
        check(&root, &created, "DirectoryOrCreate").is_ok(),
        "an existing directory passes"
    );
    assert!(check_err(&root, &file, "DirectoryOrCreate").contains("is not a directory"));
}

#[test]
fn host_path_file_types() {
    let root = TestRoot::new();
    let dir = root.outside();
    let file = dir.join("file");
    std::fs::write(&file, b"").unwrap();

    assert!(check(&root, &file, "File").is_ok());
    assert_eq!(
        check_err(&root, &dir, "File"),
        format!(
            "volume \"h\": hostPath type check failed: {} is not a file, it's a Directory",
            dir.display()
        )
    );

    let created = dir.join("new-file");
    assert!(check(&root, &created, "FileOrCreate").is_ok());
    let meta = std::fs::metadata(&created).unwrap();
    assert!(meta.is_file() && meta.len() == 0);
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    assert!(check_err(&root, &dir, "FileOrCreate").contains("is not a file"));
    let orphan = dir.join("no-parent/file");
    assert!(
        check_err(&root, &orphan, "FileOrCreate").contains("cannot create file"),
        "the parent is not created"
    );
}

#[test]
fn host_path_special_file_types() {
    let root = TestRoot::new();
    let dir = root.outside();
    let socket_path = dir.join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
    assert!(
        std::fs::metadata(&socket_path)
            .unwrap()
            .file_type()
            .is_socket()
    );

    assert!(check(&root, &socket_path, "Socket").is_ok());
    assert!(check_err(&root, &dir, "Socket").ends_with("is not a socket file, it's a Directory"));

    let null = std::path::Path::new("/dev/null");
    assert!(check(&root, null, "CharDevice").is_ok());
    assert!(
        check_err(&root, &socket_path, "CharDevice")
            .ends_with("is not a character device, it's a Socket")
    );
    assert!(
        check_err(&root, null, "BlockDevice").ends_with("is not a block device, it's a CharDevice")
    );

    let loop_dev = std::fs::read_dir("/dev")
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.file_type().is_block_device()))
        .expect("no block device in /dev to test with");
    assert!(check(&root, &loop_dev, "BlockDevice").is_ok());
    assert!(
        check_err(&root, &loop_dev, "CharDevice")
            .ends_with("is not a character device, it's a BlockDevice")
    );

    assert_eq!(
        check_err(&root, &dir, "Sideways"),
        "volume \"h\": Sideways is an invalid volume type"
    );
}

#[test]
fn host_path_with_backsteps_is_refused() {
    let root = TestRoot::new();
    let err = check_err(&root, std::path::Path::new("/tmp/../etc"), "");
    assert_eq!(
        err,
        "volume \"h\": invalid HostPath `/tmp/../etc`: must not contain '..'"
    );
}

#[test]
fn unsupported_types_fail_the_pod_and_leave_nothing() {
    let root = TestRoot::new();
    let data = Volume {
        name: "data".into(),
        iscsi: Some(Default::default()),
        ..Default::default()
    };
    let p = pod(
        vec![memory_dir("shm", None), empty_dir("cache"), data],
        vec![],
    );
    let err = root.manager.mount_blocking(&p).unwrap_err();
    assert_eq!(
        err.to_string(),
        "volume \"data\": volume type iscsi is not supported yet"
    );
    assert!(
        matches!(err, VolumeError::Volume { ref volume, cause: SetupError::Unsupported(ref t) } if volume == "data" && t == "iscsi")
    );
    assert!(!root.pod_dir().exists());
}

#[test]
fn claims_without_a_claim_volume_source_fail_the_pod_and_leave_nothing() {
    let root = TestRoot::new();
    let data = Volume {
        name: "data".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: "claim".into(),
            read_only: None,
        }),
        ..Default::default()
    };
    let p = pod(vec![empty_dir("cache"), data], vec![]);
    let err = root.manager.mount_blocking(&p).unwrap_err();
    assert_eq!(
        err.to_string(),
        "volume \"data\": volume type persistentVolumeClaim is not supported yet"
    );
    assert!(!root.pod_dir().exists());
}

#[test]
fn a_failed_volume_takes_back_what_the_call_set_up() {
    let root = TestRoot::new();
    let file = root.outside().join("file");
    std::fs::write(&file, b"").unwrap();
    let p = pod(
        vec![
            memory_dir("shm", Some("1Mi")),
            empty_dir("cache"),
            host_path("h", &file, "Directory"),
        ],
        vec![],
    );
    let err = root.manager.mount_blocking(&p).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("volume \"h\": hostPath type check failed"),
        "{err}"
    );
    let base = std::fs::canonicalize(root.path()).unwrap();
    assert!(
        !mount_points().iter().any(|m| m.starts_with(&base)),
        "a mount was left behind"
    );
    let plugin_dir = root.pod_dir().join("volumes/kubernetes.io~empty-dir");
    assert!(!plugin_dir.join("shm").exists() && !plugin_dir.join("cache").exists());
}

#[test]
fn a_failed_resync_keeps_volumes_set_up_earlier() {
    let root = TestRoot::new();
    let first = root
        .manager
        .mount_blocking(&pod(vec![memory_dir("shm", None)], vec![]))
        .unwrap();
    let shm = first.get("shm").unwrap().host_path.clone();
    let missing = root.outside().join("missing");
    assert!(
        root.manager
            .mount_blocking(&pod(
                vec![memory_dir("shm", None), host_path("h", &missing, "File")],
                vec![]
            ))
            .is_err()
    );
    assert_eq!(mounts_at(&shm).len(), 1, "the earlier tmpfs must stay");
}

#[test]
fn invalid_pod_uid_is_refused() {
    let root = TestRoot::new();
    let mut p = pod(vec![empty_dir("cache")], vec![]);
    p.metadata.uid = Some("../escape".into());
    assert!(matches!(
        root.manager.mount_blocking(&p),
        Err(VolumeError::InvalidPodUid(_))
    ));
}
