//! Test support: the private containerd that the integration tests of every crate share.
//!
//! # How the tests get a container runtime
//!
//! One private containerd serves a whole test run. The test command (`scripts/test.sh`) starts
//! it before `cargo test` with `scripts/containerd-up.sh RT_DIR` and stops it afterwards with
//! `scripts/containerd-down.sh RT_DIR`. The daemon lives entirely under `RT_DIR` (root, state,
//! sockets, CNI config and IPAM data, images) and has its own CNI bridge. Tests find it through
//! two environment variables that `containerd-up.sh` prints:
//!
//! - `KUBELET_TEST_CRI_ENDPOINT`: its CRI socket, `unix://RT_DIR/containerd/containerd.sock`;
//! - `KUBELET_TEST_RT_DIR`: the run's root, where [`TestRuntime::temp_dir`] puts test files.
//!
//! The daemon is started outside the tests because every test binary is its own process and
//! Rust never drops statics, so no test could know when the last user of a shared daemon is
//! done. Stopping it from the test command also cleans up after a test that crashed.
//!
//! The images `localhost/busybox:1.35` and `localhost/pause:3.10` are built offline by
//! `scripts/build-images.sh` and imported at startup. Pulling them would fail (there is no
//! registry), so tests use them with `IfNotPresent` or `Never`.
//!
//! Tests never skip silently: [`containerd`] panics, naming what is missing, when the
//! variables are not set, when the test does not run as root, or when runc or containerd are not
//! installed.
//!
//! Each test keeps to its own pods (a unique pod UID), puts their cgroups under
//! [`TestRuntime::cgroup_root`], and removes both at the end; [`PodGuard`] does that even when
//! the test panics.
//!
//! # A real control plane
//!
//! [`apiserver::RealApiServer`] runs the upstream kube-apiserver on a private etcd with the
//! Node authorizer and NodeRestriction on, for cluster tests that must hold against the real
//! server rather than the project's test API server.

pub mod apiserver;
pub mod csi_driver;
pub mod device_plugin;
mod guard;
pub mod kubectl;
pub mod logind;
mod plugin_server;
mod pods;
pub mod preflight;

pub use guard::PodGuard;
pub use pods::{POD_UID_LABEL, remove_sandboxes};

use kubelet_cri::CriError;
use kubelet_cri::api::{Container, PodSandbox};
use kubelet_cri::remote::RemoteRuntime;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The variable that holds the private containerd's CRI endpoint.
pub const CRI_ENDPOINT_VAR: &str = "KUBELET_TEST_CRI_ENDPOINT";
/// The variable that holds the test run's root directory.
pub const RT_DIR_VAR: &str = "KUBELET_TEST_RT_DIR";
/// The cgroup every test pod lives under, in every hierarchy, one child per test run (see
/// [`TestRuntime::cgroup_root`]); `containerd-down.sh` removes what is left empty under it.
pub const CGROUP_ROOT: &str = "/kubelet-rs-test";

/// A TCP port of 127.0.0.1 that was free a moment ago.
///
/// # Panics
/// When no port can be bound.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// The deadline of each CRI call the tests make.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The private containerd of this test run.
///
/// # Panics
/// When the run has none (the test was not started by `scripts/test.sh`), when the test is not
/// root, or when runc or containerd are not installed.
pub fn containerd() -> TestRuntime {
    let endpoint = std::env::var(CRI_ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!(
            "integration tests need the private containerd started by scripts/test.sh: \
             {CRI_ENDPOINT_VAR} is not set"
        )
    });
    let rt_dir = std::env::var(RT_DIR_VAR).unwrap_or_else(|_| {
        panic!(
            "integration tests need the private containerd started by scripts/test.sh: \
             {RT_DIR_VAR} is not set"
        )
    });
    preflight::require_root();
    preflight::require_binaries(&["containerd", "runc"]);
    let rt_dir = PathBuf::from(rt_dir);
    let run = rt_dir
        .file_name()
        .map_or_else(|| "run".into(), |name| name.to_string_lossy().into_owned());
    TestRuntime {
        endpoint,
        cgroup_root: format!("{CGROUP_ROOT}/{run}"),
        rt_dir,
    }
}

/// The shared containerd, as a test sees it.
#[derive(Clone, Debug)]
pub struct TestRuntime {
    endpoint: String,
    rt_dir: PathBuf,
    cgroup_root: String,
}

impl TestRuntime {
    /// The CRI endpoint, `unix:///...`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The test run's root directory.
    pub fn rt_dir(&self) -> &Path {
        &self.rt_dir
    }

    /// A CRI client of the shared containerd.
    ///
    /// # Panics
    /// When the daemon does not answer.
    pub async fn connect(&self) -> RemoteRuntime {
        RemoteRuntime::connect(&self.endpoint, &self.endpoint, REQUEST_TIMEOUT)
            .await
            .unwrap_or_else(|err| panic!("the test containerd does not answer: {err}"))
    }

    /// The cgroup root of this run's test pods, `/kubelet-rs-test/<run dir name>`: a kubelet's
    /// housekeeping kills what runs in pod cgroups it does not know, so two test runs on one
    /// machine must not share one.
    pub fn cgroup_root(&self) -> &str {
        &self.cgroup_root
    }

    /// The `cgroup_parent` for a test pod's sandbox: `<cgroup root>/pod<uid>`.
    pub fn pod_cgroup_parent(&self, pod_uid: &str) -> String {
        format!("{}/pod{pod_uid}", self.cgroup_root)
    }

    /// The CRI sandboxes labelled with `pod_uid`, in any state.
    pub async fn pod_sandboxes(&self, pod_uid: &str) -> Result<Vec<PodSandbox>, CriError> {
        pods::sandboxes_of(&self.connect().await, pod_uid).await
    }

    /// The CRI containers labelled with `pod_uid`, in any state.
    pub async fn pod_containers(&self, pod_uid: &str) -> Result<Vec<Container>, CriError> {
        pods::containers_of(&self.connect().await, pod_uid).await
    }

    /// Stops and removes every sandbox of `pod_uid`, then any of its containers left over.
    pub async fn remove_pod(&self, pod_uid: &str) -> Result<(), CriError> {
        pods::remove_pod(&self.connect().await, pod_uid).await
    }

    /// Removes the cgroup `relative` (for example `pod<uid>`) under the test cgroup root in every
    /// hierarchy, deepest directories first. Missing directories are fine; a cgroup that still
    /// has processes is an error.
    pub fn remove_cgroup_tree(&self, relative: &str) -> Result<(), kubelet_host::HostError> {
        kubelet_host::cgroupfs::remove_everywhere(&format!("{}/{relative}", self.cgroup_root))
    }

    /// Removes the cgroups of a pod whose sandbox used [`Self::pod_cgroup_parent`].
    pub fn remove_pod_cgroups(&self, pod_uid: &str) -> Result<(), kubelet_host::HostError> {
        self.remove_cgroup_tree(&format!("pod{pod_uid}"))
    }

    /// A fresh directory for one test under the run's root, deleted when dropped. `name` makes
    /// it recognisable in a leftover `RT_DIR`.
    ///
    /// # Panics
    /// When the directory cannot be made.
    pub fn temp_dir(&self, name: &str) -> tempfile::TempDir {
        let parent = self.rt_dir.join("tests");
        std::fs::create_dir_all(&parent)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", parent.display()));
        tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir_in(&parent)
            .unwrap_or_else(|err| panic!("cannot create a temp dir in {}: {err}", parent.display()))
    }

    /// Removes the pod `pod_uid` and its cgroups when dropped, also when the test panics.
    pub fn pod_guard(&self, pod_uid: &str) -> PodGuard {
        PodGuard::new(self.clone(), pod_uid.to_string())
    }
}
