//! Store-level tests: import, lookup, removal, leases, restart, and the overlay root fs.

#[path = "../tests/common/oci.rs"]
mod oci;

use crate::{ImageError, ImageStore, mount_rootfs, unmount_rootfs};
use oci::{Compression, E, Options, TestImage, layer, write_archive};
use std::fs;
use std::path::{Path, PathBuf};

fn base_layer() -> Vec<u8> {
    layer(&[
        E::Dir("etc/"),
        E::File("etc/passwd", b"root:x:0:0::/:/bin/sh\n"),
        E::File("etc/old", b"old"),
        E::Dir("bin/"),
        E::File("bin/sh", b"#!fake"),
    ])
}

fn top_layer() -> Vec<u8> {
    layer(&[
        E::Dir("etc/"),
        E::File("etc/.wh.old", b""),
        E::File("etc/new", b"new"),
    ])
}

async fn import(
    store: &ImageStore,
    dir: &Path,
    images: &[&TestImage],
    gzip: bool,
) -> Result<Vec<crate::Image>, ImageError> {
    let archive = dir.join(format!("archive-{}.tar", rand_suffix()));
    write_archive(&archive, images, gzip);
    store.import(&archive).await
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Files under `dir` (recursively), for "nothing left behind" checks.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(read) = fs::read_dir(dir) {
        for e in read.flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                out.extend(files_under(&p));
            }
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn import_and_lookup_by_every_form() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store"), None).unwrap();
    let img = TestImage::new(
        Some("docker.io/library/busybox:1.35"),
        &[base_layer(), top_layer()],
        Options {
            user: "1002:1002",
            ..Default::default()
        },
    );
    let images = import(&store, tmp.path(), &[&img], true).await.unwrap();
    assert_eq!(images.len(), 1);
    let id = img.id().to_string();
    assert_eq!(images[0].id, id);
    assert_eq!(images[0].repo_tags, ["docker.io/library/busybox:1.35"]);
    let repo_digest = format!("docker.io/library/busybox@{}", img.manifest.digest);
    assert_eq!(images[0].repo_digests, std::slice::from_ref(&repo_digest));
    let size: u64 = img.config.bytes.len() as u64
        + img.layers.iter().map(|l| l.bytes.len() as u64).sum::<u64>();
    assert_eq!(images[0].size, size);

    let hex = &id["sha256:".len()..];
    for reference in [
        "busybox:1.35",
        "library/busybox:1.35",
        "docker.io/library/busybox:1.35",
        &repo_digest,
        &format!("busybox@{}", img.manifest.digest),
        &id,
        hex,
        &hex[..12],
        &format!("sha256:{}", &hex[..8]),
    ] {
        let found = store
            .get(reference)
            .unwrap_or_else(|| panic!("{reference} not found"));
        assert_eq!(found.id, id, "{reference}");
    }
    for missing in [
        "busybox",
        "busybox:1.36",
        "docker.io/other/busybox:1.35",
        "zzz",
        "",
    ] {
        assert!(store.get(missing).is_none(), "{missing} found");
    }

    let cri = images[0].to_cri();
    assert_eq!(cri.uid.map(|u| u.value), Some(1002));
    assert_eq!(cri.spec.unwrap().image, id);
    assert_eq!(store.list().len(), 1);

    let usage = store.fs_info().unwrap();
    assert!(usage.used_bytes.unwrap().value > 0 && usage.inodes_used.unwrap().value > 10);
    assert_eq!(
        usage.fs_id.unwrap().mountpoint,
        tmp.path().join("store").display().to_string()
    );

    // The same archive again: same image, no duplicate.
    import(&store, tmp.path(), &[&img], false).await.unwrap();
    assert_eq!(store.list().len(), 1);
}

#[tokio::test]
async fn zstd_and_uncompressed_layers_and_unnamed_images() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path(), None).unwrap();
    let zstd = TestImage::new(
        Some("localhost/z:1"),
        &[base_layer()],
        Options {
            compression: Compression::Zstd,
            user: "nobody",
            ..Default::default()
        },
    );
    let plain = TestImage::new(
        None,
        &[top_layer()],
        Options {
            compression: Compression::None,
            ..Default::default()
        },
    );
    let images = import(&store, tmp.path(), &[&zstd, &plain], false)
        .await
        .unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0].to_cri().username, "nobody");
    assert!(images[1].repo_tags.is_empty());
    let dirs = store.lease("c1", plain.id()).unwrap();
    assert_eq!(fs::read(dirs[0].join("etc/new")).unwrap(), b"new");
    let dirs = store.lease("c2", "localhost/z:1").unwrap();
    assert_eq!(fs::read(dirs[0].join("bin/sh")).unwrap(), b"#!fake");
}

#[tokio::test]
async fn remove_by_tag_by_id_and_with_leases() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root, None).unwrap();
    let a = TestImage::new(Some("localhost/a:1"), &[base_layer()], Options::default());
    let mut a2 = TestImage::new(Some("localhost/a:2"), &[base_layer()], Options::default());
    a2.name = Some("localhost/a:2".into());
    import(&store, tmp.path(), &[&a], false).await.unwrap();
    import(&store, tmp.path(), &[&a2], false).await.unwrap();
    let image = store.get("localhost/a:1").unwrap();
    assert_eq!(image.repo_tags, ["localhost/a:1", "localhost/a:2"]);
    let snapshot_count = || fs::read_dir(root.join("snapshots")).unwrap().count();
    let blob_count = || {
        fs::read_dir(root.join("content/blobs/sha256"))
            .unwrap()
            .count()
    };
    assert_eq!(snapshot_count(), 1);

    // A tag goes alone while the image has another one.
    store.remove("localhost/a:1").unwrap();
    assert!(store.get("localhost/a:1").is_none());
    assert_eq!(
        store.get("localhost/a:2").unwrap().repo_tags,
        ["localhost/a:2"]
    );
    // Missing images and tags are fine.
    store.remove("localhost/a:1").unwrap();
    store.remove("localhost/never:1").unwrap();
    store.remove(&format!("sha256:{}", "0".repeat(64))).unwrap();

    // A leased image leaves the listing but its snapshots stay until released.
    let lowers = store.lease("ctr-1", &image.id).unwrap();
    store.remove("localhost/a:2").unwrap();
    assert!(store.list().is_empty());
    assert!(lowers[0].join("etc/passwd").is_file());
    assert_eq!(blob_count(), 0);
    // Durable across a restart.
    drop(store);
    let store = ImageStore::open(&root, None).unwrap();
    assert!(lowers[0].join("etc/passwd").is_file());
    store.release("ctr-1").unwrap();
    store.release("ctr-1").unwrap();
    assert_eq!(snapshot_count(), 0);

    // By id: the image with all its tags.
    import(&store, tmp.path(), &[&a, &a2], false).await.unwrap();
    let id = store.get("localhost/a:1").unwrap().id;
    store.remove(&id).unwrap();
    assert!(store.list().is_empty());
    assert!(store.get("localhost/a:2").is_none());
    assert_eq!((snapshot_count(), blob_count()), (0, 0));
}

#[tokio::test]
async fn shared_layers_survive_removal_of_one_image() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root, None).unwrap();
    let one = TestImage::new(Some("localhost/one:1"), &[base_layer()], Options::default());
    let two = TestImage::new(
        Some("localhost/two:1"),
        &[base_layer(), top_layer()],
        Options::default(),
    );
    import(&store, tmp.path(), &[&one, &two], true)
        .await
        .unwrap();
    assert_eq!(fs::read_dir(root.join("snapshots")).unwrap().count(), 2);
    store.remove("localhost/one:1").unwrap();
    let lowers = store.lease("c", "localhost/two:1").unwrap();
    assert_eq!(lowers.len(), 2);
    assert!(lowers[1].join("bin/sh").is_file());
    assert!(lowers[0].join("etc/new").is_file());
}

#[tokio::test]
async fn a_layer_with_a_wrong_diff_id_is_refused_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root, None).unwrap();
    let bad = TestImage::new(
        Some("localhost/bad:1"),
        &[base_layer(), top_layer()],
        Options {
            bad_diff_id: true,
            ..Default::default()
        },
    );
    let err = import(&store, tmp.path(), &[&bad], true).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("diff id"), "{msg}");
    assert!(msg.contains(&bad.layers[0].digest), "{msg}");
    assert!(store.list().is_empty());
    for dir in ["content", "snapshots", "tmp"] {
        let left: Vec<_> = files_under(&root.join(dir))
            .into_iter()
            .filter(|p| p.is_file())
            .collect();
        assert!(left.is_empty(), "{dir}: {left:?}");
    }
    assert_eq!(fs::read_dir(root.join("snapshots")).unwrap().count(), 0);
    assert!(files_under(&root.join("records/images")).is_empty());
}

#[tokio::test]
async fn a_corrupt_record_is_quarantined() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root, None).unwrap();
    let img = TestImage::new(Some("localhost/ok:1"), &[base_layer()], Options::default());
    import(&store, tmp.path(), &[&img], false).await.unwrap();
    drop(store);
    fs::write(root.join("records/images/bad.json"), b"{not json").unwrap();
    let store = ImageStore::open(&root, None).unwrap();
    assert!(store.get("localhost/ok:1").is_some());
    assert!(root.join("records/images/quarantine/bad.json").is_file());
}

#[test]
fn a_second_open_of_the_same_store_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let _store = ImageStore::open(tmp.path(), None).unwrap();
    assert!(matches!(
        ImageStore::open(tmp.path(), None),
        Err(ImageError::Locked { .. })
    ));
}

/// Needs root (overlayfs, whiteout device nodes): CI runs the tests as root.
#[tokio::test]
async fn rootfs_overlay_of_sixty_layers_with_whiteouts() {
    let tmp = tempfile::tempdir().unwrap();
    // A long store path, as real ones are: the options must still fit.
    let root = tmp
        .path()
        .join("a-rather-long-directory-name-for-the-image-store/images");
    let store = ImageStore::open(&root, None).unwrap();
    let mut layers = vec![base_layer()];
    for i in 1..59 {
        let name = format!("layer/{i}");
        layers.push(layer(&[E::Dir("layer/"), E::File(&name, name.as_bytes())]));
    }
    layers.push(top_layer());
    let img = TestImage::new(Some("localhost/many:1"), &layers, Options::default());
    import(&store, tmp.path(), &[&img], true).await.unwrap();
    let lowers = store.lease("ctr", img.id()).unwrap();
    assert_eq!(lowers.len(), 60);
    let (upper, work, target) = (
        tmp.path().join("upper"),
        tmp.path().join("work"),
        tmp.path().join("rootfs"),
    );
    for d in [&upper, &work, &target] {
        fs::create_dir(d).unwrap();
    }
    mount_rootfs(&lowers, &upper, &work, &target).unwrap();
    let result = std::panic::catch_unwind(|| {
        assert_eq!(
            fs::read(target.join("etc/passwd")).unwrap(),
            b"root:x:0:0::/:/bin/sh\n"
        );
        assert_eq!(fs::read(target.join("etc/new")).unwrap(), b"new");
        assert!(
            !target.join("etc/old").exists(),
            "the whiteout did not delete etc/old"
        );
        assert!(!target.join("etc/.wh.old").exists());
        for i in 1..59 {
            assert!(target.join(format!("layer/{i}")).is_file());
        }
        fs::write(target.join("written"), b"x").unwrap();
        assert!(upper.join("written").is_file());
    });
    unmount_rootfs(&target).unwrap();
    unmount_rootfs(&target).unwrap();
    result.unwrap();
    assert!(!target.join("etc").exists());
    // The lower dirs are untouched.
    assert!(lowers[59].join("etc/old").is_file());
}

/// Unmounts a test mount however the test ends.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        unmount_rootfs(&self.0).unwrap();
    }
}

/// Needs root (a small tmpfs as the store): CI runs the tests as root.
#[tokio::test]
async fn a_full_disk_fails_the_import_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    fs::create_dir(&root).unwrap();
    rustix::mount::mount(
        "tmpfs",
        &root,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        c"size=256k",
    )
    .unwrap();
    let _unmount = Unmount(root.clone());
    let store = ImageStore::open(&root, None).unwrap();
    // Incompressible, and four times the file system.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let img = TestImage::new(
        Some("localhost/big:1"),
        &[layer(&[E::File("big", &data)])],
        Options {
            compression: Compression::None,
            ..Default::default()
        },
    );
    let err = import(&store, tmp.path(), &[&img], false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    assert!(store.list().is_empty());
    let left: Vec<_> = files_under(&root)
        .into_iter()
        .filter(|p| p.is_file() && !p.ends_with("lock"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    drop(store);
}

#[test]
fn the_store_and_its_pulls_can_cross_threads() {
    fn send_sync_clone<T: Send + Sync + Clone>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path(), None).unwrap();
    send_sync_clone(&store);
    send(store.pull("busybox", None));
    send(store.import(tmp.path()));
}

#[tokio::test]
async fn leftovers_of_a_crash_are_cleared_and_pins_persist() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root, None).unwrap();
    let img = TestImage::new(
        Some("localhost/pause:3.10"),
        &[base_layer()],
        Options::default(),
    );
    import(&store, tmp.path(), &[&img], false).await.unwrap();
    store.set_pinned("localhost/pause:3.10", true).unwrap();
    assert!(store.get("localhost/pause:3.10").unwrap().pinned);
    drop(store);
    // What a crash mid-pull leaves: a partial ingest, a half-unpacked layer, an unused blob
    // and snapshot.
    fs::write(root.join("content/ingest/123-0"), b"partial").unwrap();
    fs::create_dir_all(root.join("tmp/unpack-123-0/etc")).unwrap();
    let orphan = crate::content::digest_of(b"orphan");
    fs::write(
        root.join("content/blobs/sha256").join(&orphan[7..]),
        b"orphan",
    )
    .unwrap();
    fs::create_dir(root.join("snapshots").join("f".repeat(64))).unwrap();
    let store = ImageStore::open(&root, None).unwrap();
    assert!(store.get("localhost/pause:3.10").unwrap().pinned);
    assert_eq!(
        fs::read_dir(root.join("content/ingest")).unwrap().count(),
        0
    );
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    assert!(
        !root
            .join("content/blobs/sha256")
            .join(&orphan[7..])
            .exists()
    );
    assert_eq!(fs::read_dir(root.join("snapshots")).unwrap().count(), 1);
}
