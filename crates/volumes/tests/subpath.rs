//! container_mounts with subPath and subPathExpr against the real kernel: safe resolution
//! beneath the volume, creation of missing dirs, refusal of escapes, and pinning by bind mount.

mod common;

use common::*;
use k8s_openapi::api::core::v1::EnvVar;
use kubelet_volumes::{HostMount, MountError, PodVolumes, Propagation, VolumeError};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::PathBuf;

/// A pod with one emptyDir "data", set up; returns its volumes and the volume's host path.
fn with_data_volume(root: &TestRoot) -> (PodVolumes, PathBuf) {
    let volumes = root
        .manager
        .mount_blocking(&pod(vec![empty_dir("data")], vec![]))
        .unwrap();
    let path = volumes.get("data").unwrap().host_path.clone();
    (volumes, path)
}

fn mounts_for(
    root: &TestRoot,
    volumes: &PodVolumes,
    mounts: Vec<k8s_openapi::api::core::v1::VolumeMount>,
) -> Result<Vec<HostMount>, VolumeError> {
    let c = container("app", mounts);
    root.manager
        .container_mounts(&pod(vec![empty_dir("data")], vec![c.clone()]), volumes, &c)
}

fn sub_path_error(root: &TestRoot, volumes: &PodVolumes, sub_path: &str) -> MountError {
    match mounts_for(root, volumes, vec![mount("data", "/m", sub_path)]) {
        Err(VolumeError::Mount { cause, .. }) => cause,
        other => panic!("subPath {sub_path:?} was not refused: {other:?}"),
    }
}

fn no_mounts_under(root: &TestRoot) {
    let base = std::fs::canonicalize(root.pod_dir()).unwrap();
    let left: Vec<_> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&base))
        .collect();
    assert!(left.is_empty(), "left mounted: {left:?}");
}

#[test]
fn whole_volume_mounts_map_read_only_and_propagation() {
    let root = TestRoot::new();
    let (volumes, data) = with_data_volume(&root);
    let mut ro = mount("data", "/ro", "");
    ro.read_only = Some(true);
    ro.mount_propagation = Some("HostToContainer".into());
    let mut bidi = mount("data", "/rw", "");
    bidi.mount_propagation = Some("Bidirectional".into());
    let mounts = mounts_for(&root, &volumes, vec![ro, bidi, mount("data", "/plain", "")]).unwrap();
    assert_eq!(
        mounts,
        vec![
            HostMount {
                container_path: "/ro".into(),
                host_path: data.clone(),
                read_only: true,
                propagation: Propagation::HostToContainer
            },
            HostMount {
                container_path: "/rw".into(),
                host_path: data.clone(),
                read_only: false,
                propagation: Propagation::Bidirectional
            },
            HostMount {
                container_path: "/plain".into(),
                host_path: data,
                read_only: false,
                propagation: Propagation::None
            },
        ]
    );
}

#[test]
fn unknown_volume_and_bad_propagation_are_errors() {
    let root = TestRoot::new();
    let (volumes, _) = with_data_volume(&root);
    let err = mounts_for(&root, &volumes, vec![mount("nope", "/m", "")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "volumeMount \"nope\" of container \"app\": cannot find volume \"nope\" to mount into the container"
    );
    let mut odd = mount("data", "/m", "");
    odd.mount_propagation = Some("Sideways".into());
    assert!(matches!(
        mounts_for(&root, &volumes, vec![odd]),
        Err(VolumeError::Mount {
            cause: MountError::InvalidPropagation(_),
            ..
        })
    ));
}

#[test]
fn sub_path_is_bind_mounted_under_volume_subpaths() {
    let root = TestRoot::new();
    let (volumes, data) = with_data_volume(&root);
    std::fs::create_dir(data.join("logs")).unwrap();
    std::fs::write(data.join("logs/marker"), b"logs").unwrap();
    std::fs::write(data.join("app.conf"), b"conf").unwrap();

    let mut conf = mount("data", "/etc/app.conf", "app.conf");
    conf.read_only = Some(true);
    let mounts = mounts_for(
        &root,
        &volumes,
        vec![
            mount("data", "/whole", ""),
            mount("data", "/logs", "logs"),
            conf,
        ],
    )
    .unwrap();
    let logs = root.pod_dir().join("volume-subpaths/data/app/1");
    let file = root.pod_dir().join("volume-subpaths/data/app/2");
    assert_eq!(mounts[1].host_path, logs);
    assert_eq!(mounts[2].host_path, file);
    assert!(mounts[2].read_only);
    assert_eq!(mounts_at(&logs).len(), 1);
    assert_eq!(std::fs::read(logs.join("marker")).unwrap(), b"logs");
    assert!(file.is_file(), "a file subPath gets a file mount point");
    assert_eq!(std::fs::read(&file).unwrap(), b"conf");

    // A resync resolves to the same objects and keeps the binds as they are.
    let again = mounts_for(
        &root,
        &volumes,
        vec![
            mount("data", "/whole", ""),
            mount("data", "/logs", "logs"),
            mount("data", "/c", "app.conf"),
        ],
    )
    .unwrap();
    assert_eq!(again[1].host_path, logs);
    assert_eq!(mounts_at(&logs).len(), 1, "a second bind was stacked");
    assert_eq!(mounts_at(&file).len(), 1);
}

#[test]
fn missing_sub_path_is_created_with_the_volume_mode() {
    let root = TestRoot::new();
    let (volumes, data) = with_data_volume(&root);
    let mounts = mounts_for(&root, &volumes, vec![mount("data", "/deep", "a/b/c")]).unwrap();
    let created = data.join("a/b/c");
    assert!(created.is_dir());
    for dir in ["a", "a/b", "a/b/c"] {
        assert_eq!(
            std::fs::metadata(data.join(dir))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o777,
            "{dir}"
        );
    }
    std::fs::write(mounts[0].host_path.join("through-bind"), b"x").unwrap();
    assert!(
        created.join("through-bind").exists(),
        "the bind does not show the created dir"
    );
}

#[test]
fn sub_path_expr_expands_literal_env() {
    let root = TestRoot::new();
    let (volumes, data) = with_data_volume(&root);
    let mut m = mount("data", "/logs", "");
    m.sub_path_expr = Some("logs/$(POD)".into());
    let mut c = container("app", vec![m]);
    c.env = Some(vec![EnvVar {
        name: "POD".into(),
        value: Some("web-0".into()),
        value_from: None,
    }]);
    let mounts = root
        .manager
        .container_mounts(&pod(vec![empty_dir("data")], vec![c.clone()]), &volumes, &c)
        .unwrap();
    assert!(data.join("logs/web-0").is_dir());
    assert_eq!(
        mounts[0].host_path,
        root.pod_dir().join("volume-subpaths/data/app/0")
    );

    let mut missing = c.clone();
    missing.env = None;
    let err = root
        .manager
        .container_mounts(&pod(vec![], vec![]), &volumes, &missing)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "volumeMount \"data\" of container \"app\": subPathExpr: missing value for POD"
    );
}

#[test]
fn backsteps_and_absolute_sub_paths_are_refused() {
    let root = TestRoot::new();
    let (volumes, _) = with_data_volume(&root);
    for bad in ["..", "../x", "a/../../x", "a/.."] {
        assert!(
            matches!(
                sub_path_error(&root, &volumes, bad),
                MountError::SubPathBacksteps(_)
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        sub_path_error(&root, &volumes, "/etc"),
        MountError::AbsoluteSubPath(_)
    ));
    assert_eq!(
        sub_path_error(&root, &volumes, "a/../../x").to_string(),
        "subPath `a/../../x` must not contain '..'"
    );
    no_mounts_under(&root);
}

#[test]
fn symlinks_out_of_the_volume_are_refused() {
    let root = TestRoot::new();
    let (volumes, data) = with_data_volume(&root);
    let outside = root.outside();
    std::fs::write(outside.join("secret"), b"host").unwrap();
    symlink("/etc", data.join("etc")).unwrap();
    symlink(&outside, data.join("abs-out")).unwrap();
    std::fs::create_dir(data.join("dir")).unwrap();
    symlink("../../../../../../outside", data.join("dir/rel-out")).unwrap();
    symlink("../..", data.join("dir/up")).unwrap();

    for bad in [
        "etc",
        "etc/passwd",
        "abs-out",
        "abs-out/secret",
        "dir/rel-out",
        "dir/up/x",
        "abs-out/new-dir",
    ] {
        let err = sub_path_error(&root, &volumes, bad);
        assert!(
            matches!(err, MountError::SymlinkEscapes { .. }),
            "{bad}: {err}"
        );
    }
    assert_eq!(
        sub_path_error(&root, &volumes, "etc/passwd").to_string(),
        "subPath `etc/passwd`: the symlink at `etc` points outside of the volume"
    );
    assert!(
        !outside.join("new-dir").exists(),
        "a dir was created outside of the volume"
    );
    no_mounts_under(&root);
}

#[test]
fn symlinks_that_stay_inside_are_resolved_beneath_the_volume() {
    let root = TestRoot::new();
    let (volumes, data) = with_data_volume(&root);
    std::fs::create_dir_all(data.join("real/inner")).unwrap();
    std::fs::write(data.join("real/inner/marker"), b"real").unwrap();
    symlink("real", data.join("rel")).unwrap();
    symlink(data.join("real"), data.join("abs")).unwrap();
    symlink("../real/inner", data.join("real/sibling")).unwrap();

    let mounts = mounts_for(
        &root,
        &volumes,
        vec![
            mount("data", "/a", "rel/inner"),
            mount("data", "/b", "abs/inner"),
            mount("data", "/c", "rel/sibling"),
        ],
    )
    .unwrap();
    for m in &mounts {
        assert_eq!(
            std::fs::read(m.host_path.join("marker")).unwrap(),
            b"real",
            "{m:?}"
        );
    }
}

#[test]
fn swapping_a_symlink_in_after_resolution_has_no_effect() {
    let root = TestRoot::new();
    let (volumes, data) = with_data_volume(&root);
    let outside = root.outside();
    std::fs::write(outside.join("secret"), b"host").unwrap();
    std::fs::create_dir_all(data.join("dir/sub")).unwrap();
    std::fs::write(data.join("dir/sub/marker"), b"mine").unwrap();

    let mounts = mounts_for(&root, &volumes, vec![mount("data", "/m", "dir/sub")]).unwrap();
    let pinned = &mounts[0].host_path;

    // A container rewrites the volume: the checked directory moves away, a link to the host
    // takes its place.
    std::fs::rename(data.join("dir"), data.join("moved")).unwrap();
    std::fs::create_dir(data.join("dir")).unwrap();
    symlink(&outside, data.join("dir/sub")).unwrap();

    assert_eq!(std::fs::read(pinned.join("marker")).unwrap(), b"mine");
    assert!(
        !pinned.join("secret").exists(),
        "the bind followed the swapped-in symlink"
    );
    // Resolving again refuses the link, and the existing bind stays what it was.
    let err = mounts_for(&root, &volumes, vec![mount("data", "/m", "dir/sub")]).unwrap_err();
    assert!(
        matches!(
            err,
            VolumeError::Mount {
                cause: MountError::SymlinkEscapes { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(std::fs::read(pinned.join("marker")).unwrap(), b"mine");
}

#[test]
fn sub_path_of_a_host_path_volume() {
    let root = TestRoot::new();
    let host = root.outside();
    std::fs::create_dir(host.join("shared")).unwrap();
    std::fs::write(host.join("shared/marker"), b"host").unwrap();
    let volumes = root
        .manager
        .mount_blocking(&pod(vec![host_path("h", &host, "Directory")], vec![]))
        .unwrap();
    let c = container("app", vec![mount("h", "/m", "shared")]);
    let mounts = root
        .manager
        .container_mounts(&pod(vec![], vec![c.clone()]), &volumes, &c)
        .unwrap();
    assert_eq!(
        std::fs::read(mounts[0].host_path.join("marker")).unwrap(),
        b"host"
    );
    assert!(mounts[0].host_path.starts_with(root.pod_dir()));
}
