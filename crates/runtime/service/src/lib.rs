//! The built-in runtime's CRI service: sandbox and container stores with one record each on disk,
//! the CRI v1 RuntimeService and ImageService (k8s-cri's tonic server traits), restart recovery
//! and serving on a unix socket.
//!
//! [`Runtime::open`] loads the records and reconciles them with the monitors and exit files left
//! on disk (restart recovery), so a runtime killed at any moment comes back with the same state
//! and restarts nothing. The kubelet uses a [`Runtime`] in process; [`serve`] puts it on a socket
//! for crictl, critest or another kubelet; [`Runtime::streaming_backend`] is what the streaming
//! server runs exec, attach and port-forward sessions with.

mod container;
mod error;
mod events;
mod filters;
mod fsutil;
mod grpc;
mod ids;
mod layout;
mod names;
mod reason;
mod records;
mod recovery;
mod sandbox;
mod serve;
mod stats;
mod store;
mod streaming;

pub use error::ServiceError;
pub use serve::{ServeError, serve};

use layout::Layout;
use records::{ContainerRecord, SandboxRecord};
use runtime_images::ImageStore;
use runtime_network::Cni;
use runtime_oci::Handlers;
use std::path::PathBuf;
use std::sync::Arc;
use store::Store;

/// The cgroup driver the runtime places containers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupDriver {
    #[default]
    Cgroupfs,
    Systemd,
}

/// Where the runtime keeps its files and finds its helpers.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Persistent files: images, records, container bundles and writable layers.
    pub root: PathBuf,
    /// Files that must not outlive a reboot: monitor state, pinned namespaces, OCI runtime state.
    pub state: PathBuf,
    pub cni_conf_dir: PathBuf,
    pub cni_bin_dirs: Vec<PathBuf>,
    /// A containerd certs.d directory (HOST/hosts.toml); None = no mirrors or insecure hosts.
    pub registry_config: Option<PathBuf>,
    /// The binary that runs `monitor --config FILE` (the kubelet binary).
    pub monitor_binary: PathBuf,
    pub cgroup_driver: CgroupDriver,
    /// Where the streaming server (exec, attach, port-forward URLs) listens, and its timeouts.
    pub streaming: runtime_streaming::Config,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            root: PathBuf::from("/var/lib/kubelet-rs"),
            state: PathBuf::from("/run/kubelet-rs"),
            cni_conf_dir: PathBuf::from("/etc/cni/net.d"),
            cni_bin_dirs: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
            registry_config: None,
            monitor_binary: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("kubelet")),
            cgroup_driver: CgroupDriver::Cgroupfs,
            streaming: runtime_streaming::Config::default(),
        }
    }
}

/// The runtime: cheap to clone, every clone the same runtime.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    options: RuntimeOptions,
    layout: Layout,
    images: ImageStore,
    cni: Cni,
    handlers: Handlers,
    sandboxes: Store<SandboxRecord>,
    containers: Store<ContainerRecord>,
    names: names::Names,
    events: events::Events,
    /// Serves the URLs that Exec, Attach and PortForward answer with.
    streaming: runtime_streaming::Server,
    stats: stats::Stats,
    /// Dropped with the runtime: exit waiters (which hold only a weak reference) then stop, so a
    /// runtime that is dropped and reopened never has two writers of one record.
    alive: tokio::sync::watch::Sender<()>,
}

impl Runtime {
    /// Opens the runtime on its directories and recovers the state a previous instance left.
    /// Must be called inside a tokio runtime: containers still running get an exit waiter.
    pub async fn open(options: RuntimeOptions) -> Result<Runtime, ServiceError> {
        let layout = Layout::create(&options.root, &options.state)?;
        // The image store's lock makes this process the only one on these dirs, so writes cut
        // off by a crash can be cleared (the CNI cache is not a RecordDir, which does it itself).
        let images = ImageStore::open(&layout.images(), options.registry_config.clone())?;
        runtime_state::remove_temp_files(&layout.cni_cache());
        let cni = Cni::new(
            options.cni_conf_dir.clone(),
            options.cni_bin_dirs.clone(),
            layout.cni_cache(),
        );
        let handlers = Handlers::discover(&layout.oci_root());
        let sandboxes = Store::open(layout.sandbox_records())?;
        let containers = Store::open(layout.container_records())?;
        let stats = stats::Stats::new(options.cgroup_driver);
        let streaming_config = options.streaming.clone();
        let runtime = Runtime {
            // The streaming server's backend holds the runtime weakly, so the two can be made
            // together without a reference cycle.
            inner: Arc::new_cyclic(|weak| Inner {
                streaming: runtime_streaming::Server::new(
                    streaming_config,
                    streaming::backend(weak.clone()),
                ),
                options,
                layout,
                images,
                cni,
                handlers,
                sandboxes,
                containers,
                names: names::Names::default(),
                events: events::Events::new(),
                stats,
                alive: tokio::sync::watch::Sender::new(()),
            }),
        };
        recovery::recover(&runtime.inner).await?;
        let streaming_address =
            runtime
                .inner
                .streaming
                .start()
                .await
                .map_err(|source| ServiceError::Stream {
                    what: format!(
                        "cannot start the streaming server on {}",
                        runtime.inner.options.streaming.address
                    ),
                    source,
                })?;
        tracing::info!(
            root = %runtime.inner.options.root.display(),
            state = %runtime.inner.options.state.display(),
            handlers = ?runtime.inner.handlers.names(),
            sandboxes = runtime.inner.sandboxes.len(),
            containers = runtime.inner.containers.len(),
            streaming = %streaming_address,
            "built-in runtime open"
        );
        Ok(runtime)
    }

    /// The image store, for `kubelet runtime import`.
    pub fn images(&self) -> &ImageStore {
        &self.inner.images
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.inner.options
    }
}

/// Nanoseconds since the Unix epoch, as CRI timestamps are.
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Runs blocking work (OCI runtime, mounts, monitor spawn) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ServiceError::join)?
}
