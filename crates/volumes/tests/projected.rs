//! configMap, secret, downwardAPI and projected volumes against the real kernel, with objects
//! served by FakeObjects: files and modes, optional references, atomic updates, path escapes,
//! tmpfs for secrets, service account tokens, and cleanup.

mod common;

use common::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, DownwardAPIProjection,
    DownwardAPIVolumeFile, DownwardAPIVolumeSource, KeyToPath, ObjectFieldSelector, Pod,
    ProjectedVolumeSource, ResourceFieldSelector, Secret, SecretProjection, SecretVolumeSource,
    ServiceAccountTokenProjection, Volume, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubelet_objects::FakeObjects;
use kubelet_volumes::{SetupError, VolumeError, VolumeManager};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("default".into()),
        ..Default::default()
    }
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: meta(name),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn secret(name: &str, data: &[(&str, &[u8])]) -> Secret {
    Secret {
        metadata: meta(name),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
    KeyToPath {
        key: key.into(),
        path: path.into(),
        mode,
    }
}

fn cm_volume(name: &str, cm: &str, items: Option<Vec<KeyToPath>>, optional: bool) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: cm.into(),
            items,
            optional: Some(optional),
            default_mode: None,
        }),
        ..Default::default()
    }
}

fn secret_volume(name: &str, secret: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn field_file(path: &str, field_path: &str) -> DownwardAPIVolumeFile {
    DownwardAPIVolumeFile {
        path: path.into(),
        field_ref: Some(ObjectFieldSelector {
            api_version: Some("v1".into()),
            field_path: field_path.into(),
        }),
        mode: None,
        resource_field_ref: None,
    }
}

fn downward_volume(name: &str, items: Vec<DownwardAPIVolumeFile>) -> Volume {
    Volume {
        name: name.into(),
        downward_api: Some(DownwardAPIVolumeSource {
            default_mode: None,
            items: Some(items),
        }),
        ..Default::default()
    }
}

/// What upstream's service account admission adds to every pod.
fn kube_api_access() -> Volume {
    Volume {
        name: "kube-api-access".into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o644),
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: None,
                        expiration_seconds: Some(3607),
                        path: "token".into(),
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "kube-root-ca.crt".into(),
                        items: Some(vec![item("ca.crt", "ca.crt", None)]),
                        optional: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![field_file("namespace", "metadata.namespace")]),
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    secret: Some(SecretProjection {
                        name: "extra".into(),
                        items: Some(vec![item("k", "extra/k", Some(0o400))]),
                        optional: Some(true),
                    }),
                    ..Default::default()
                },
            ]),
        }),
        ..Default::default()
    }
}

fn data_dir(volume: &Path) -> String {
    std::fs::read_link(volume.join("..data"))
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Entries of the volume dir, sorted, as the user sees them.
fn entries(volume: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(volume)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn mount_volume(root: &TestRoot, p: &Pod, volume: &str) -> PathBuf {
    let volumes = root.manager.mount_pod_volumes(p).await.unwrap();
    let mounted = volumes.get(volume).unwrap();
    assert!(mounted.read_only, "{volume} must be read-only");
    mounted.host_path.clone()
}

#[tokio::test]
async fn config_map_volume_shows_every_key_through_data_links() {
    let objects = FakeObjects::default();
    let mut cm = config_map("app-config", &[("app.conf", "port=80\n")]);
    cm.binary_data = Some(BTreeMap::from([(
        "logo.bin".into(),
        ByteString(vec![0, 159, 255]),
    )]));
    objects.put_config_map(cm);
    let root = TestRoot::with_objects(&objects);
    let p = pod(vec![cm_volume("cfg", "app-config", None, false)], vec![]);
    let path = mount_volume(&root, &p, "cfg").await;

    assert_eq!(
        path,
        root.pod_dir().join("volumes/kubernetes.io~configmap/cfg")
    );
    assert!(mounts_at(&path).is_empty(), "a configMap volume is on disk");
    let data = data_dir(&path);
    assert!(data.starts_with("..20") && data.len() > "..2026_01_01_00_00_00.".len());
    assert_eq!(
        entries(&path),
        [data.as_str(), "..data", "app.conf", "logo.bin"]
    );
    assert_eq!(
        std::fs::read_link(path.join("app.conf")).unwrap(),
        Path::new("..data/app.conf")
    );
    assert_eq!(std::fs::read(path.join("app.conf")).unwrap(), b"port=80\n");
    assert_eq!(std::fs::read(path.join("logo.bin")).unwrap(), [0, 159, 255]);
    assert_eq!(mode(&path.join("app.conf")), 0o644);
    assert_eq!(mode(&path.join(&data)), 0o755);
}

#[tokio::test]
async fn items_choose_paths_and_modes() {
    let objects = FakeObjects::default();
    objects.put_config_map(config_map("c", &[("a", "A"), ("b", "B"), ("c", "C")]));
    let root = TestRoot::with_objects(&objects);
    let mut volume = cm_volume(
        "cfg",
        "c",
        Some(vec![
            item("a", "conf/a.txt", Some(0o400)),
            item("b", "b.txt", None),
        ]),
        false,
    );
    volume.config_map.as_mut().unwrap().default_mode = Some(0o600);
    let path = mount_volume(&root, &pod(vec![volume], vec![]), "cfg").await;
    let data = data_dir(&path);
    assert_eq!(entries(&path), [data.as_str(), "..data", "b.txt", "conf"]);
    assert_eq!(std::fs::read(path.join("conf/a.txt")).unwrap(), b"A");
    assert_eq!(mode(&path.join("conf/a.txt")), 0o400);
    assert_eq!(mode(&path.join("b.txt")), 0o600);
    assert_eq!(mode(&path.join("conf")), 0o755);
    assert_eq!(
        std::fs::read_link(path.join("conf")).unwrap(),
        Path::new("..data/conf")
    );
}

#[tokio::test]
async fn optional_objects_and_keys() {
    let objects = FakeObjects::default();
    objects.put_config_map(config_map("c", &[("a", "A")]));
    let root = TestRoot::with_objects(&objects);

    let missing_object = cm_volume("gone", "nope", None, true);
    let missing_key = cm_volume(
        "some",
        "c",
        Some(vec![item("a", "a", None), item("x", "x", None)]),
        true,
    );
    let volumes = root
        .manager
        .mount_pod_volumes(&pod(vec![missing_object, missing_key], vec![]))
        .await
        .unwrap();
    let gone = &volumes.get("gone").unwrap().host_path;
    assert_eq!(entries(gone), [data_dir(gone).as_str(), "..data"]);
    let some = &volumes.get("some").unwrap().host_path;
    assert_eq!(entries(some), [data_dir(some).as_str(), "..data", "a"]);
    root.manager.cleanup_pod(UID).unwrap();

    let err = root
        .manager
        .mount_pod_volumes(&pod(
            vec![empty_dir("scratch"), cm_volume("cfg", "nope", None, false)],
            vec![],
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "volume \"cfg\": configmap \"nope\" not found in namespace default"
    );
    assert!(!root.pod_dir().exists(), "a failed pod leaves nothing");

    let err = root
        .manager
        .mount_pod_volumes(&pod(
            vec![cm_volume(
                "cfg",
                "c",
                Some(vec![item("x", "x", None)]),
                false,
            )],
            vec![],
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "volume \"cfg\": configmap references non-existent config key: x"
    );
    assert!(!root.pod_dir().exists());
}

#[tokio::test]
async fn secret_volume_is_a_tmpfs_and_cleanup_unmounts_it() {
    let objects = FakeObjects::default();
    objects.put_secret(secret("tls", &[("tls.key", b"PRIVATE")]));
    let root = TestRoot::with_objects(&objects);
    let p = pod(vec![secret_volume("certs", "tls")], vec![]);
    let path = mount_volume(&root, &p, "certs").await;
    assert_eq!(
        path,
        root.pod_dir().join("volumes/kubernetes.io~secret/certs")
    );
    let mounts = mounts_at(&path);
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(mounts[0].0, "tmpfs");
    assert_eq!(std::fs::read(path.join("tls.key")).unwrap(), b"PRIVATE");

    // A resync neither stacks a second tmpfs nor rewrites anything.
    let data = data_dir(&path);
    mount_volume(&root, &p, "certs").await;
    assert_eq!(mounts_at(&path).len(), 1);
    assert_eq!(data_dir(&path), data);

    let base = std::fs::canonicalize(root.pod_dir()).unwrap();
    root.manager.cleanup_pod(UID).unwrap();
    assert!(!root.pod_dir().exists());
    assert!(!mount_points().iter().any(|m| m.starts_with(&base)));
}

#[tokio::test]
async fn without_an_api_server_objects_fail_and_the_downward_api_works() {
    let root = TestRoot::new();
    let err = root
        .manager
        .mount_pod_volumes(&pod(vec![cm_volume("cfg", "c", None, true)], vec![]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "volume \"cfg\": couldn't get configmap default/c, no kubeClient defined"
    );
    let err = root
        .manager
        .mount_pod_volumes(&pod(vec![secret_volume("s", "tls")], vec![]))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        VolumeError::Volume {
            cause: SetupError::Object(kubelet_objects::ObjectError::NoClient { .. }),
            ..
        }
    ));
    assert!(!root.pod_dir().exists());

    let p = pod(
        vec![downward_volume(
            "info",
            vec![
                field_file("name", "metadata.name"),
                field_file("uid", "metadata.uid"),
            ],
        )],
        vec![],
    );
    let path = mount_volume(&root, &p, "info").await;
    assert_eq!(
        path,
        root.pod_dir()
            .join("volumes/kubernetes.io~downward-api/info")
    );
    assert!(mounts_at(&path).is_empty(), "the downward API is on disk");
    assert_eq!(std::fs::read_to_string(path.join("name")).unwrap(), "web");
    assert_eq!(std::fs::read_to_string(path.join("uid")).unwrap(), UID);
}

#[tokio::test]
async fn downward_api_follows_label_changes_and_reads_node_allocatable() {
    let root = TestRoot::new();
    root.manager.set_node_allocatable(BTreeMap::from([
        ("cpu".into(), Quantity("8".into())),
        ("memory".into(), Quantity("16Gi".into())),
    ]));
    let cpu = DownwardAPIVolumeFile {
        path: "cpu_limit".into(),
        field_ref: None,
        mode: Some(0o444),
        resource_field_ref: Some(ResourceFieldSelector {
            container_name: Some("app".into()),
            divisor: Some(Quantity("1m".into())),
            resource: "limits.cpu".into(),
        }),
    };
    let mut p = pod(
        vec![downward_volume(
            "info",
            vec![field_file("labels", "metadata.labels"), cpu],
        )],
        vec![container("app", vec![])],
    );
    p.metadata.labels = Some(BTreeMap::from([("app".into(), "web".into())]));
    let path = mount_volume(&root, &p, "info").await;
    assert_eq!(
        std::fs::read_to_string(path.join("cpu_limit")).unwrap(),
        "8000"
    );
    assert_eq!(mode(&path.join("cpu_limit")), 0o444);
    assert_eq!(
        std::fs::read_to_string(path.join("labels")).unwrap(),
        "app=\"web\""
    );

    p.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("tier".into(), "front".into());
    mount_volume(&root, &p, "info").await;
    assert_eq!(
        std::fs::read_to_string(path.join("labels")).unwrap(),
        "app=\"web\"\ntier=\"front\""
    );
}

#[tokio::test]
async fn updates_swap_the_data_dir_and_drop_the_old_one() {
    let objects = FakeObjects::default();
    objects.put_config_map(config_map("c", &[("a", "1"), ("b", "1")]));
    let root = TestRoot::with_objects(&objects);
    let p = pod(vec![cm_volume("cfg", "c", None, false)], vec![]);
    let path = mount_volume(&root, &p, "cfg").await;
    let first = data_dir(&path);

    // Unchanged: nothing is rewritten, and it is cheap.
    let started = std::time::Instant::now();
    for _ in 0..100 {
        root.manager.mount_pod_volumes(&p).await.unwrap();
    }
    eprintln!("unchanged resync: {:?} per call", started.elapsed() / 100);
    assert_eq!(data_dir(&path), first);

    objects.put_config_map(config_map("c", &[("a", "2"), ("c", "new")]));
    mount_volume(&root, &p, "cfg").await;
    let second = data_dir(&path);
    assert_ne!(second, first);
    assert!(!path.join(&first).exists(), "the old data dir is removed");
    assert_eq!(entries(&path), [second.as_str(), "..data", "a", "c"]);
    assert_eq!(std::fs::read(path.join("a")).unwrap(), b"2");
    assert_eq!(std::fs::read(path.join("c")).unwrap(), b"new");

    // A mode change alone is an update too.
    let mut volume = cm_volume("cfg", "c", None, false);
    volume.config_map.as_mut().unwrap().default_mode = Some(0o640);
    mount_volume(&root, &pod(vec![volume], vec![]), "cfg").await;
    assert_ne!(data_dir(&path), second);
    assert_eq!(mode(&path.join("a")), 0o640);
}

#[tokio::test]
async fn a_failed_update_keeps_the_contents_and_is_reported() {
    let objects = FakeObjects::default();
    objects.put_config_map(config_map("c", &[("a", "1")]));
    let root = TestRoot::with_objects(&objects);
    let p = pod(vec![cm_volume("cfg", "c", None, false)], vec![]);
    let path = mount_volume(&root, &p, "cfg").await;
    objects.remove_config_map("default", "c");
    let volumes = root.manager.mount_pod_volumes(&p).await.unwrap();
    assert_eq!(
        volumes.update_errors().collect::<Vec<_>>(),
        [("cfg", "configmap \"c\" not found in namespace default")]
    );
    assert_eq!(std::fs::read(path.join("a")).unwrap(), b"1");
}

/// Readers that open `..data` once see one complete version; readers of a key see one whole
/// file, never a mix or a partial write.
#[test]
fn readers_see_the_old_or_the_new_set_never_a_mix() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let objects = FakeObjects::default();
    let version = |n: usize| {
        let a = format!("a{n}:").repeat(20_000);
        let b = format!("b{n}:").repeat(20_000);
        config_map("c", &[("a", &a), ("b", &b)])
    };
    objects.put_config_map(version(0));
    let root = TestRoot::with_objects(&objects);
    let p = pod(vec![cm_volume("cfg", "c", None, false)], vec![]);
    let path = root
        .manager
        .mount_blocking(&p)
        .unwrap()
        .get("cfg")
        .unwrap()
        .host_path
        .clone();
    let stop = AtomicBool::new(false);
    let one_version = |text: &str, key: char| -> Option<String> {
        let first = text.split(':').next()?.to_owned();
        assert!(first.starts_with(key), "{first}");
        assert_eq!(text, format!("{first}:").repeat(20_000), "a torn file");
        Some(first[1..].to_owned())
    };
    let (sets, files) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let (mut sets, mut files) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(path.join("a")) {
                    one_version(&text, 'a');
                    files += 1;
                }
                let Ok(dir) = std::fs::File::open(path.join("..data")) else {
                    continue;
                };
                let at = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&dir));
                let (Ok(a), Ok(b)) = (
                    std::fs::read_to_string(format!("{at}/a")),
                    std::fs::read_to_string(format!("{at}/b")),
                ) else {
                    continue;
                };
                assert_eq!(one_version(&a, 'a'), one_version(&b, 'b'), "a mixed set");
                sets += 1;
            }
            (sets, files)
        });
        for n in 1..=200 {
            objects.put_config_map(version(n));
            root.manager.mount_blocking(&p).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        reader.join().unwrap()
    });
    assert!(
        sets > 0 && files > 0,
        "the reader never read: {sets} {files}"
    );
    let data = data_dir(&path);
    assert_eq!(entries(&path), [data.as_str(), "..data", "a", "b"]);
}

#[tokio::test]
async fn payload_paths_cannot_escape_the_volume() {
    let objects = FakeObjects::default();
    objects.put_config_map(config_map("c", &[("a", "A")]));
    let root = TestRoot::with_objects(&objects);
    let outside = root.outside();
    let cases = [
        (
            "../../../../outside/x",
            "invalid path: must not contain '..': ../../../../outside/x",
        ),
        (
            "/etc/evil",
            "invalid path: must be relative path: /etc/evil",
        ),
        (
            "sub/../../x",
            "invalid path: must not contain '..': sub/../../x",
        ),
        (
            "..data/a",
            "invalid path: must not start with '..': ..data/a",
        ),
        (
            "..2026_01_01_00_00_00.1",
            "invalid path: must not start with '..': ..2026_01_01_00_00_00.1",
        ),
        (
            "./..data",
            "invalid path: must not start with '..': ./..data",
        ),
    ];
    for (bad, message) in cases {
        let p = pod(
            vec![cm_volume(
                "cfg",
                "c",
                Some(vec![item("a", bad, None)]),
                false,
            )],
            vec![],
        );
        let err = root.manager.mount_pod_volumes(&p).await.unwrap_err();
        assert_eq!(err.to_string(), format!("volume \"cfg\": {message}"));
        assert!(!root.pod_dir().exists(), "{bad}: something was written");
    }
    let p = pod(
        vec![downward_volume(
            "d",
            vec![field_file("../../escape", "metadata.name")],
        )],
        vec![],
    );
    assert!(root.manager.mount_pod_volumes(&p).await.is_err());
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

    // On an update too: the old contents stay.
    let good = pod(vec![cm_volume("cfg", "c", None, false)], vec![]);
    let path = mount_volume(&root, &good, "cfg").await;
    let bad = pod(
        vec![cm_volume(
            "cfg",
            "c",
            Some(vec![item("a", "/x", None)]),
            false,
        )],
        vec![],
    );
    let volumes = root.manager.mount_pod_volumes(&bad).await.unwrap();
    assert_eq!(volumes.update_errors().count(), 1);
    assert_eq!(std::fs::read(path.join("a")).unwrap(), b"A");
}

#[tokio::test]
async fn projected_service_account_volume() {
    let objects = FakeObjects::default();
    objects.put_config_map(config_map("kube-root-ca.crt", &[("ca.crt", "CA")]));
    let root = TestRoot::with_objects(&objects);
    let mut p = pod(vec![kube_api_access()], vec![]);
    p.spec.as_mut().unwrap().service_account_name = Some("robot".into());
    let path = mount_volume(&root, &p, "kube-api-access").await;
    assert_eq!(
        path,
        root.pod_dir()
            .join("volumes/kubernetes.io~projected/kube-api-access")
    );
    assert_eq!(mounts_at(&path)[0].0, "tmpfs");
    let data = data_dir(&path);
    assert_eq!(
        entries(&path),
        [data.as_str(), "..data", "ca.crt", "namespace", "token"]
    );
    assert_eq!(
        std::fs::read_to_string(path.join("token")).unwrap(),
        "token-1-default-robot"
    );
    assert_eq!(std::fs::read_to_string(path.join("ca.crt")).unwrap(), "CA");
    assert_eq!(
        std::fs::read_to_string(path.join("namespace")).unwrap(),
        "default"
    );
    assert_eq!(mode(&path.join("token")), 0o644);

    // The token is requested once and reused while fresh; the optional secret shows up later.
    objects.put_secret(secret("extra", &[("k", b"v")]));
    mount_volume(&root, &p, "kube-api-access").await;
    assert_eq!(objects.tokens_issued(), 1);
    assert_eq!(std::fs::read(path.join("extra/k")).unwrap(), b"v");
    assert_eq!(mode(&path.join("extra/k")), 0o400);
    assert_eq!(
        std::fs::read_to_string(path.join("token")).unwrap(),
        "token-1-default-robot"
    );

    // Cleanup forgets the pod's tokens.
    root.manager.cleanup_pod(UID).unwrap();
    mount_volume(&root, &p, "kube-api-access").await;
    assert_eq!(objects.tokens_issued(), 2);
}

#[tokio::test]
async fn a_key_can_be_mounted_by_sub_path() {
    let objects = FakeObjects::default();
    objects.put_config_map(config_map("c", &[("app.conf", "x=1")]));
    let root = TestRoot::with_objects(&objects);
    let c = container("app", vec![mount("cfg", "/etc/app.conf", "app.conf")]);
    let p = pod(vec![cm_volume("cfg", "c", None, false)], vec![c.clone()]);
    let volumes = root.manager.mount_pod_volumes(&p).await.unwrap();
    let mounts = root.manager.container_mounts(&p, &volumes, &c).unwrap();
    assert!(mounts[0].read_only, "configMap mounts are read-only");
    assert_eq!(std::fs::read(&mounts[0].host_path).unwrap(), b"x=1");
    root.manager.cleanup_pod(UID).unwrap();
    assert!(!root.pod_dir().exists());
}

#[test]
fn a_restarted_manager_updates_volumes_it_did_not_write() {
    let objects = FakeObjects::default();
    objects.put_secret(secret("s", &[("k", b"1")]));
    let root = TestRoot::with_objects(&objects);
    let p = pod(vec![secret_volume("s", "s")], vec![]);
    let path = root
        .manager
        .mount_blocking(&p)
        .unwrap()
        .get("s")
        .unwrap()
        .host_path
        .clone();
    objects.put_secret(secret("s", &[("k", b"2")]));
    let restarted = VolumeManager::new(root.manager.root_dir().to_owned())
        .with_objects(std::sync::Arc::new(objects.clone()));
    restarted.mount_blocking(&p).unwrap();
    assert_eq!(mounts_at(&path).len(), 1);
    assert_eq!(std::fs::read(path.join("k")).unwrap(), b"2");
}
