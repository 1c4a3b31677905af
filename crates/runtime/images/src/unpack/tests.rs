use super::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use tar::{Builder, Header};

/// A tar built entry by entry; `raw` names bypass the tar crate's own path checks, so the
/// hostile entries a registry could serve can be written.
struct Tar(Builder<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        Tar(Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, name: &str, mode: u32) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(1_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h
    }

    fn add(mut self, mut h: Header, data: &[u8]) -> Tar {
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn file(self, name: &str, data: &[u8]) -> Tar {
        self.add(Self::header(EntryType::Regular, name, 0o644), data)
    }

    fn dir(self, name: &str) -> Tar {
        self.add(Self::header(EntryType::Directory, name, 0o755), b"")
    }

    fn link(self, kind: EntryType, name: &str, target: &str) -> Tar {
        let mut h = Self::header(kind, name, 0o777);
        h.set_link_name_literal(target).unwrap();
        self.add(h, b"")
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn unpack_into(tar: Tar) -> (tempfile::TempDir, Result<(), ImageError>) {
    let tmp = tempfile::tempdir().unwrap();
    let result = unpack(&tar.bytes()[..], tmp.path());
    (tmp, result)
}

fn refused(tar: Tar) -> String {
    let (_tmp, result) = unpack_into(tar);
    match result {
        Err(e @ ImageError::UnsafeEntry { .. }) => e.to_string(),
        other => panic!("expected an unsafe-entry error, got {other:?}"),
    }
}

#[test]
fn dotdot_paths_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let escape = format!(
        "../{}/evil",
        outside.path().file_name().unwrap().to_str().unwrap()
    );
    assert!(refused(Tar::new().file(&escape, b"x")).contains(".."));
    assert!(refused(Tar::new().dir("a/").file("a/../../evil", b"x")).contains(".."));
    assert!(refused(Tar::new().link(EntryType::Link, "h", "../../etc/passwd")).contains(".."));
}

#[test]
fn absolute_paths_are_refused() {
    assert!(refused(Tar::new().file("/tmp/kubelet-rs-evil", b"x")).contains("absolute"));
    assert!(!Path::new("/tmp/kubelet-rs-evil").exists());
    assert!(refused(Tar::new().link(EntryType::Link, "h", "/etc/passwd")).contains("absolute"));
}

#[test]
fn entries_through_symlinks_of_earlier_entries_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap();
    // A file written through a symlinked directory.
    let msg = refused(
        Tar::new()
            .link(EntryType::Symlink, "escape", target)
            .file("escape/evil", b"x"),
    );
    assert!(msg.contains("symlink"), "{msg}");
    // A relative symlink that climbs out, then a directory beneath it.
    refused(
        Tar::new()
            .link(EntryType::Symlink, "up", "../../../../..")
            .dir("up/tmp/evil/"),
    );
    // A hard link whose target is reached through a symlink.
    std::fs::write(outside.path().join("secret"), b"s").unwrap();
    refused(Tar::new().link(EntryType::Symlink, "escape", target).link(
        EntryType::Link,
        "stolen",
        "escape/secret",
    ));
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
}

#[test]
fn a_later_entry_replaces_a_symlink_instead_of_following_it() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"original").unwrap();
    let (tmp, result) = unpack_into(
        Tar::new()
            .link(EntryType::Symlink, "f", victim.to_str().unwrap())
            .file("f", b"new"),
    );
    result.unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"original");
    assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"new");
}

#[test]
fn whiteouts_become_overlayfs_whiteouts() {
    let (tmp, result) = unpack_into(
        Tar::new()
            .dir("etc/")
            .file("etc/.wh.shadow", b"")
            .dir("var/cache/")
            .file("var/cache/.wh..wh..opq", b"")
            .file("var/cache/kept", b"k"),
    );
    result.unwrap();
    let wh = std::fs::symlink_metadata(tmp.path().join("etc/shadow")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!tmp.path().join("etc/.wh.shadow").exists());
    let cache = tmp.path().join("var/cache");
    let dir = rfs::open(&cache, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    let mut buf = [0u8; 4];
    let n = rfs::fgetxattr(&dir, OPAQUE_XATTR, &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"y");
    assert!(!cache.join(".wh..wh..opq").exists());
    assert!(cache.join("kept").exists());
}

#[test]
fn hard_links_share_the_inode_and_stay_inside() {
    let (tmp, result) = unpack_into(
        Tar::new()
            .dir("bin/")
            .file("bin/busybox", b"elf")
            .link(EntryType::Link, "bin/sh", "bin/busybox")
            .link(EntryType::Link, "bin/ls", "./bin/busybox"),
    );
    result.unwrap();
    let a = std::fs::metadata(tmp.path().join("bin/busybox")).unwrap();
    let b = std::fs::metadata(tmp.path().join("bin/sh")).unwrap();
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 3));
    // A link to a target the layer does not have is an error, not a dangling link.
    let (_tmp, result) = unpack_into(Tar::new().link(EntryType::Link, "x", "missing/y"));
    assert!(result.is_err());
}

#[test]
fn xattrs_ownership_modes_times_devices_and_fifos_are_kept() {
    let mut tar = Tar::new();
    tar.0
        .append_pax_extensions([("SCHILY.xattr.trusted.kubelet-test", &b"v1"[..])])
        .unwrap();
    let mut h = Tar::header(EntryType::Regular, "suid", 0o4755);
    h.set_uid(1234);
    h.set_gid(5678);
    let mut tar = tar.add(h, b"x");
    let mut dev = Tar::header(EntryType::Char, "null", 0o666);
    dev.set_device_major(1).unwrap();
    dev.set_device_minor(3).unwrap();
    tar = tar
        .add(dev, b"")
        .add(Tar::header(EntryType::Fifo, "pipe", 0o600), b"")
        .add(Tar::header(EntryType::Directory, "d/", 0o710), b"")
        .file("d/inner", b"i");
    let (tmp, result) = unpack_into(tar);
    result.unwrap();
    let suid = std::fs::metadata(tmp.path().join("suid")).unwrap();
    assert_eq!((suid.uid(), suid.gid()), (1234, 5678));
    assert_eq!(suid.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(suid.mtime(), 1_000_000);
    let fd = rfs::open(tmp.path().join("suid"), OFlags::RDONLY, Mode::empty()).unwrap();
    let mut buf = [0u8; 8];
    let n = rfs::fgetxattr(&fd, "trusted.kubelet-test", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"v1");
    let null = std::fs::symlink_metadata(tmp.path().join("null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rfs::makedev(1, 3));
    assert_eq!(null.permissions().mode() & 0o777, 0o666);
    assert!(
        std::fs::symlink_metadata(tmp.path().join("pipe"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let d = std::fs::metadata(tmp.path().join("d")).unwrap();
    assert_eq!(d.permissions().mode() & 0o777, 0o710);
    assert_eq!(
        d.mtime(),
        1_000_000,
        "directory times are set after their children"
    );
}
