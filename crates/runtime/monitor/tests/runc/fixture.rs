//! Real containers for the tests: the offline busybox image unpacked once, hand-written OCI
//! bundles, a private runc root, cgroups under /kubelet-rs-test, all removed at the end.

use runtime_monitor::{CreateCommand, MonitorCgroup, MonitorConfig};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const RUNC: &str = "/usr/sbin/runc";

pub struct Fixture {
    /// Short, so every socket path in it fits sun_path.
    pub dir: tempfile::TempDir,
    rootfs: PathBuf,
    runc_root: PathBuf,
    /// `/kubelet-rs-test/mon-PID`: the pod-level cgroup parent of every test container.
    pub cgroup_parent: String,
    containers: RefCell<Vec<String>>,
}

#[derive(Default)]
pub struct Spec<'a> {
    pub args: &'a [&'a str],
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    pub memory_limit: Option<i64>,
    /// A host dir mounted read-write at /shared.
    pub shared: Option<&'a Path>,
    /// Share the host's PID namespace, so processes can outlive the container's init.
    pub host_pid: bool,
}

impl Fixture {
    pub fn new() -> Result<Fixture, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("the runc tests need root".into());
        }
        if !Path::new(RUNC).exists() {
            return Err(format!("{RUNC} is missing: install Debian's runc package"));
        }
        let dir = tempfile::Builder::new()
            .prefix("kmon")
            .tempdir_in("/tmp")
            .map_err(|e| format!("temp dir: {e}"))?;
        let rootfs = dir.path().join("rootfs");
        let runc_root = dir.path().join("runc");
        std::fs::create_dir_all(&rootfs).map_err(|e| e.to_string())?;
        unpack_busybox(dir.path(), &rootfs)?;
        Ok(Fixture {
            cgroup_parent: format!("/kubelet-rs-test/mon-{}", std::process::id()),
            dir,
            rootfs,
            runc_root,
            containers: RefCell::new(Vec::new()),
        })
    }

    /// Writes the bundle of container `name` and returns the monitor config for it.
    pub fn container(&self, name: &str, spec: Spec) -> MonitorConfig {
        let id = format!("kmon-{}-{name}", std::process::id());
        let bundle = self.dir.path().join("bundles").join(name);
        std::fs::create_dir_all(&bundle).unwrap();
        let config = oci_config(&self.rootfs, &format!("{}/{id}", self.cgroup_parent), &spec);
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
        self.containers.borrow_mut().push(id.clone());
        MonitorConfig {
            container_id: id,
            bundle,
            state_dir: self.dir.path().join("state").join(name),
            create: CreateCommand {
                binary: RUNC.into(),
                root: self.runc_root.clone(),
                global_args: Vec::new(),
            },
            log_path: Some(self.dir.path().join(format!("{name}.log"))),
            tty: spec.tty,
            stdin: spec.stdin,
            stdin_once: spec.stdin_once,
            cgroup: MonitorCgroup::Cgroupfs {
                parent: Some(self.cgroup_parent.clone()),
            },
        }
    }

    pub fn runc(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new(RUNC)
            .arg("--root")
            .arg(&self.runc_root)
            .args(args)
            .output()
            .map_err(|e| format!("runc: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "runc {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Deletes every container and the test's cgroups (deepest first, rmdir only).
    pub fn cleanup(&self) {
        for id in self.containers.borrow().iter() {
            let _ = self.runc(&["delete", "--force", id]);
        }
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let top = hierarchy
                .path()
                .join(self.cgroup_parent.trim_start_matches('/'));
            if let Err(e) = kubelet_host::cgroupfs::remove_tree(&top) {
                eprintln!("cleanup: {e}");
            }
            let _ = std::fs::remove_dir(hierarchy.path().join("kubelet-rs-test"));
        }
    }
}

/// RUNTIME-NOTES section 6: the busybox archive's single layer unpacked into `rootfs`.
fn unpack_busybox(work: &Path, rootfs: &Path) -> Result<(), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../scripts/build-images.sh");
    let images = work.join("images");
    run(Command::new("bash").arg(&script).arg(&images))?;
    let layout = work.join("layout");
    std::fs::create_dir_all(&layout).map_err(|e| e.to_string())?;
    run(Command::new("tar")
        .arg("-xf")
        .arg(images.join("busybox-1.35.oci.tar"))
        .arg("-C")
        .arg(&layout))?;
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let read_json = |path: PathBuf| -> Result<Value, String> {
        serde_json::from_slice(&std::fs::read(&path).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())
    };
    let index = read_json(layout.join("index.json"))?;
    let manifest = read_json(blob(
        index["manifests"][0]["digest"].as_str().unwrap_or_default(),
    ))?;
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        let digest = layer["digest"].as_str().unwrap_or_default();
        run(Command::new("tar")
            .arg("-xzf")
            .arg(blob(digest))
            .arg("-C")
            .arg(rootfs))?;
    }
    std::fs::remove_dir_all(&layout).map_err(|e| e.to_string())
}

fn run(command: &mut Command) -> Result<(), String> {
    let out = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A minimal runc config: new pid, ipc, uts, mount and network namespaces, a read-only
/// shared rootfs (tests run one after another, and each container writes nothing there).
fn oci_config(rootfs: &Path, cgroups_path: &str, spec: &Spec) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "mode=1777"]}),
    ];
    if let Some(shared) = spec.shared {
        mounts.push(json!({"destination": "/shared", "type": "bind",
                           "source": shared, "options": ["rbind", "rw"]}));
    }
    let mut namespaces = vec![
        json!({"type": "network"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if !spec.host_pid {
        namespaces.push(json!({"type": "pid"}));
    }
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if let Some(limit) = spec.memory_limit {
        resources["memory"] = json!({"limit": limit, "swap": limit});
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": spec.tty,
            "user": {"uid": 0, "gid": 0},
            "args": spec.args,
            "env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": true
        },
        "root": {"path": rootfs, "readonly": true},
        "hostname": "kmon",
        "mounts": mounts,
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": resources,
            "namespaces": namespaces,
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// The log's records as `STREAM TAG TEXT`, after checking each timestamp's shape.
pub fn log_records(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let (time, rest) = line.split_once(' ').expect("a record has a timestamp");
            assert_eq!(time.len(), 30, "RFC 3339 with nanoseconds: {time}");
            assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
            rest.to_string()
        })
        .collect()
}

/// Waits until `check` holds, for up to ten seconds.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
