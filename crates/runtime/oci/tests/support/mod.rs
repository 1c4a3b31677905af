//! Fixtures for the real-runtime tests: the busybox image unpacked into a rootfs, a container
//! spec from build_spec, and a guard that deletes the container and its cgroups.

use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, LinuxContainerConfig, LinuxContainerResources,
    LinuxContainerSecurityContext, PodSandboxConfig, PodSandboxMetadata, SecurityProfile,
    security_profile::ProfileType,
};
use oci_spec::image::ImageConfiguration;
use runtime_oci::{NamespacePaths, OciRuntime, SandboxFiles, SpecInput};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Every test cgroup lives below this; removed (when empty) at the end of each test.
pub const CGROUP_BASE: &str = "kubelet-rs-test";

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the runtime integration tests create containers and cgroups: run them as root"
    );
}

pub fn runtime(name: &str, state: &Path) -> OciRuntime {
    let binary = runtime_oci::find_binary(name)
        .unwrap_or_else(|| panic!("{name} is not installed (Debian package {name})"));
    OciRuntime {
        handler: name.into(),
        binary,
        root: state.join(name),
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("json")
}

fn blob(layout: &Path, digest: &serde_json::Value) -> PathBuf {
    let d = digest.as_str().expect("digest");
    layout
        .join("blobs/sha256")
        .join(d.trim_start_matches("sha256:"))
}

/// Builds the offline busybox image and unpacks its single layer into `dir/rootfs`.
pub fn busybox(dir: &Path) -> (PathBuf, ImageConfiguration) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../scripts/build-images.sh");
    let images = dir.join("images");
    run(Command::new("bash").arg(&script).arg(&images));
    let layout = dir.join("layout");
    std::fs::create_dir_all(&layout).expect("layout dir");
    run(Command::new("tar")
        .arg("-xf")
        .arg(images.join("busybox-1.35.oci.tar"))
        .arg("-C")
        .arg(&layout));
    let index = json(&layout.join("index.json"));
    let manifest = json(&blob(&layout, &index["manifests"][0]["digest"]));
    let config: ImageConfiguration =
        serde_json::from_value(json(&blob(&layout, &manifest["config"]["digest"])))
            .expect("config");
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).expect("rootfs dir");
    run(Command::new("tar")
        .arg("-xzf")
        .arg(blob(&layout, &manifest["layers"][0]["digest"]))
        .arg("-C")
        .arg(&rootfs));
    (rootfs, config)
}

/// A test-unique cgroup parent below /kubelet-rs-test.
pub fn cgroup_parent(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "/{CGROUP_BASE}/{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A long-running busybox container with RuntimeDefault seccomp, 128 MiB of memory and the
/// sandbox's hostname file.
pub fn container(command: &[&str]) -> (ContainerConfig, PodSandboxConfig) {
    let container = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "it".into(),
            attempt: 0,
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        linux: Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources {
                memory_limit_in_bytes: 128 << 20,
                cpu_shares: 512,
                oom_score_adj: -997,
                ..Default::default()
            }),
            security_context: Some(LinuxContainerSecurityContext {
                seccomp: Some(SecurityProfile {
                    profile_type: ProfileType::RuntimeDefault as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    let sandbox = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "it-pod".into(),
            uid: "it-uid".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "it-host".into(),
        ..Default::default()
    };
    (container, sandbox)
}

/// Writes the bundle for `id` under `dir` and returns its path.
pub fn bundle(
    dir: &Path,
    id: &str,
    container: &ContainerConfig,
    sandbox: &PodSandboxConfig,
    image: &ImageConfiguration,
    rootfs: &Path,
    cgroups_path: &str,
) -> PathBuf {
    let hostname = dir.join("hostname");
    std::fs::write(&hostname, "it-host\n").expect("hostname file");
    let spec = runtime_oci::build_spec(&SpecInput {
        container_id: id,
        sandbox_id: "it-sandbox",
        container,
        sandbox,
        image,
        rootfs,
        namespaces: NamespacePaths::default(),
        cgroups_path: cgroups_path.into(),
        sandbox_files: SandboxFiles {
            hostname: Some(hostname),
            ..Default::default()
        },
        pids_limit: Some(64),
        cdi_spec_dirs: &[],
        recursive_read_only: true,
    })
    .expect("build_spec");
    let bundle = dir.join("bundle");
    runtime_oci::write_bundle(&bundle, &spec).expect("write_bundle");
    bundle
}

/// Deletes the container and removes the test's cgroups (deepest first, rmdir only) on drop.
pub struct Cleanup<'a> {
    pub runtime: &'a OciRuntime,
    pub id: String,
    pub cgroup_parent: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.runtime.delete(&self.id, true);
        let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        for h in hierarchies.filter_map(Result::ok) {
            let base = h.path();
            let parent = base.join(self.cgroup_parent.trim_start_matches('/'));
            let _ = kubelet_host::cgroupfs::remove_tree(&parent);
            let _ = std::fs::remove_dir(base.join(CGROUP_BASE));
        }
    }
}

/// The memory limit of a container's cgroup, in v1 or v2 form.
pub fn memory_limit(cgroups_path: &str) -> u64 {
    let rel = cgroups_path.trim_start_matches('/');
    for file in [
        format!("/sys/fs/cgroup/memory/{rel}/memory.limit_in_bytes"),
        format!("/sys/fs/cgroup/{rel}/memory.max"),
    ] {
        if let Ok(text) = std::fs::read_to_string(&file) {
            return text
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{file}: {text}"));
        }
    }
    panic!("no memory cgroup for {cgroups_path}");
}
