//! pin/unpin against the real kernel (root).

mod common;

use common::*;
use runtime_network::{NetworkError, PinRequest, PinnedNamespaces, pin, unpin};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Unpins on drop, so a failing assertion leaves no namespace mounted.
struct Pinned(PinnedNamespaces);

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Err(err) = unpin(&self.0) {
            eprintln!("cleanup: {err}");
        }
    }
}

fn ns_inode(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

fn full_request() -> PinRequest {
    PinRequest {
        net: true,
        ipc: true,
        uts: true,
        hostname: Some("pod-host-1".into()),
        sysctls: BTreeMap::from([
            ("net.ipv4.ip_unprivileged_port_start".into(), "100".into()),
            ("kernel.shm_rmid_forced".into(), "1".into()),
        ]),
    }
}

#[test]
fn pins_namespaces_with_hostname_and_sysctls_then_unpins() {
    require_root();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("sb1/ns");
    let host_port_start =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    let host_shm = std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap();
    let host_hostname = nix::unistd::gethostname().unwrap();
    let own_net = ns_inode(Path::new("/proc/thread-self/ns/net"));

    let pinned = Pinned(pin(&dir, &full_request()).unwrap());
    let (net, ipc, uts) = (
        pinned.0.net.clone().unwrap(),
        pinned.0.ipc.clone().unwrap(),
        pinned.0.uts.clone().unwrap(),
    );
    assert_eq!(
        (net.as_path(), ipc.as_path(), uts.as_path()),
        (&*dir.join("net"), &*dir.join("ipc"), &*dir.join("uts"))
    );

    // New namespaces, and the calling thread never left its own.
    assert_eq!(ns_inode(Path::new("/proc/thread-self/ns/net")), own_net);
    assert_ne!(ns_inode(&net), own_net);
    assert_ne!(ns_inode(&ipc), ns_inode(Path::new("/proc/self/ns/ipc")));
    assert_ne!(ns_inode(&uts), ns_inode(Path::new("/proc/self/ns/uts")));

    assert_eq!(run_in("uts", &uts, "hostname", &[]).trim(), "pod-host-1");
    assert_eq!(nix::unistd::gethostname().unwrap(), host_hostname);
    assert_eq!(
        run_in(
            "net",
            &net,
            "cat",
            &["/proc/sys/net/ipv4/ip_unprivileged_port_start"]
        )
        .trim(),
        "100"
    );
    assert_eq!(
        run_in("ipc", &ipc, "cat", &["/proc/sys/kernel/shm_rmid_forced"]).trim(),
        "1"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap(),
        host_port_start,
        "the host's value is untouched"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap(),
        host_shm
    );

    // dir is a private mount of its own; the namespace files are mounted under it.
    let dir_line = mountinfo_line(&dir).expect("dir is a mount point");
    assert!(!dir_line.contains(" shared:"), "{dir_line}");
    for path in [&net, &ipc, &uts] {
        let line = mountinfo_line(path).expect("namespace file is mounted");
        assert!(line.contains(" nsfs "), "{line}");
    }

    unpin(&pinned.0).unwrap();
    assert!(
        mounts_under(temp.path()).is_empty(),
        "{:?}",
        mounts_under(temp.path())
    );
    assert!(!net.exists() && !ipc.exists() && !uts.exists());
    unpin(&pinned.0).unwrap();
    std::fs::remove_dir_all(temp.path().join("sb1")).unwrap();
    unpin(&pinned.0).unwrap();
}

#[test]
fn only_the_asked_kinds_are_pinned() {
    require_root();
    let temp = tempfile::tempdir().unwrap();
    let request = PinRequest {
        net: true,
        ..Default::default()
    };
    let pinned = Pinned(pin(temp.path(), &request).unwrap());
    assert!(pinned.0.net.is_some() && pinned.0.ipc.is_none() && pinned.0.uts.is_none());
    assert!(!temp.path().join("ipc").exists());
    assert!(run_in("net", pinned.0.net.as_ref().unwrap(), "ip", &["-o", "link"]).contains("lo:"));
    drop(pinned);
    assert!(mounts_under(temp.path()).is_empty());

    assert_eq!(
        pin(temp.path(), &PinRequest::default()).unwrap(),
        PinnedNamespaces::default()
    );
    assert!(
        mounts_under(temp.path()).is_empty(),
        "nothing asked, nothing mounted"
    );
}

#[test]
fn a_failed_pin_leaves_nothing_behind() {
    require_root();
    let temp = tempfile::tempdir().unwrap();
    let mut request = full_request();
    // Valid name, but no such file: fails inside the thread, after unshare.
    request
        .sysctls
        .insert("net.ipv4.conf.nosuchif.forwarding".into(), "1".into());
    let err = pin(temp.path(), &request).unwrap_err();
    assert!(
        matches!(&err, NetworkError::SysctlWrite { name, .. } if name == "net.ipv4.conf.nosuchif.forwarding"),
        "{err}"
    );
    assert!(
        mounts_under(temp.path()).is_empty(),
        "{:?}",
        mounts_under(temp.path())
    );
    assert!(!temp.path().join("net").exists());

    let mut request = full_request();
    request.sysctls.insert("kernel.panic".into(), "1".into());
    let err = pin(temp.path(), &request).unwrap_err();
    assert!(err.to_string().contains("kernel.panic"), "{err}");
    assert!(mounts_under(temp.path()).is_empty());
}

#[test]
fn pinning_twice_into_one_dir_is_refused() {
    require_root();
    let temp = tempfile::tempdir().unwrap();
    let request = PinRequest {
        net: true,
        ..Default::default()
    };
    let pinned = Pinned(pin(temp.path(), &request).unwrap());
    let err = pin(temp.path(), &request).unwrap_err();
    assert!(matches!(err, NetworkError::AlreadyPinned { .. }), "{err}");
    assert!(
        mountinfo_line(pinned.0.net.as_ref().unwrap()).is_some(),
        "the first pin is intact"
    );
}

/// Unmounts the test's own shared mounts on drop (deepest first).
struct Mounts(Vec<std::path::PathBuf>);

impl Drop for Mounts {
    fn drop(&mut self) {
        for path in self.0.iter().rev() {
            let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

#[test]
fn namespace_mounts_do_not_propagate_to_peers() {
    require_root();
    use nix::mount::{MsFlags, mount};
    let temp = tempfile::tempdir().unwrap();
    let (shared, peer) = (temp.path().join("shared"), temp.path().join("peer"));
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::create_dir_all(&peer).unwrap();
    let mut mounts = Mounts(Vec::new());
    mount(
        Some("tmpfs"),
        &shared,
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    mounts.0.push(shared.clone());
    mount(
        None::<&str>,
        &shared,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    )
    .unwrap();
    // peer is in shared's peer group: whatever propagates shows up under it.
    mount(
        Some(&shared),
        &peer,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    mounts.0.push(peer.clone());

    let request = PinRequest {
        net: true,
        uts: true,
        ..Default::default()
    };
    let pinned = Pinned(pin(&shared.join("sb/ns"), &request).unwrap());
    assert!(mountinfo_line(&shared.join("sb/ns/net")).is_some());
    // The private dir mount itself is copied into the peer (its parent is shared), but the
    // namespace files under it are not: no other mount namespace holds the pod's namespaces.
    let copied: Vec<String> = mounts_under(&peer)
        .into_iter()
        .filter(|m| Path::new(m) != peer)
        .collect();
    assert_eq!(copied, [peer.join("sb/ns").display().to_string()]);
    unpin(&pinned.0).unwrap();
    assert_eq!(mounts_under(&shared), [shared.display().to_string()]);
    assert_eq!(
        mounts_under(&peer),
        [peer.display().to_string()],
        "unmounting the dir propagated to its copy"
    );
}
