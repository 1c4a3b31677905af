//! The built-in container runtime, three ways: embedded in the kubelet (in process, and served on
//! ROOT_DIR/runtime/cri.sock for crictl and critest), served alone (`kubelet runtime`), and its
//! image import (`kubelet runtime import`).
//!
//! Its containers outlive it in every case: each has a monitor process of its own (own session
//! and cgroup), so stopping the kubelet or the runtime stops no container, and the next start
//! finds them again from the records and the live monitors.

use kubelet_config::{BuiltinRuntimeConfig, CgroupDriver, RuntimeImport, RuntimeServe};
use kubelet_cri::in_process::InProcess;
use runtime_images::ImageError;
use runtime_service::{Runtime, RuntimeOptions, ServeError, ServiceError};
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BuiltinError {
    #[error("cannot open the built-in runtime on {root} and {state}: {source}")]
    Open {
        root: PathBuf,
        state: PathBuf,
        source: ServiceError,
    },
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(
        "the image store under {root} is in use by another runtime on the same root (kubelet runtime, or a kubelet running it embedded): stop that one first; its containers keep running"
    )]
    StoreInUse { root: PathBuf },
    /// The image store's error names the archive and the cause.
    #[error(transparent)]
    Import(ImageError),
}

/// The runtime's options from the kubelet's or `kubelet runtime`'s flags. The monitor binary is
/// this executable, which runs `monitor --config FILE` before anything else.
fn options(config: &BuiltinRuntimeConfig, cgroup_driver: CgroupDriver) -> RuntimeOptions {
    RuntimeOptions {
        root: config.root.clone(),
        state: config.state.clone(),
        cni_conf_dir: config.cni_conf_dir.clone(),
        cni_bin_dirs: config.cni_bin_dirs.clone(),
        registry_config: config.registry_config.clone(),
        cgroup_driver: match cgroup_driver {
            CgroupDriver::Cgroupfs => runtime_service::CgroupDriver::Cgroupfs,
            CgroupDriver::Systemd => runtime_service::CgroupDriver::Systemd,
        },
        streaming: runtime_streaming::Config {
            address: config.streaming_address,
            stream_idle_timeout: config.streaming_idle_timeout,
            ..runtime_streaming::Config::default()
        },
        ..RuntimeOptions::default()
    }
}

async fn open(options: RuntimeOptions) -> Result<Runtime, BuiltinError> {
    let (root, state) = (options.root.clone(), options.state.clone());
    Runtime::open(options).await.map_err(|source| match source {
        ServiceError::Image(ImageError::Locked { .. }) => BuiltinError::StoreInUse { root },
        source => BuiltinError::Open {
            root,
            state,
            source,
        },
    })
}

/// Opens the runtime for the kubelet: in process, through the same CRI trait and deadlines as a
/// remote runtime, and also served on `socket` for crictl and critest. The socket is served
/// for as long as the kubelet runs; a failure to serve it is logged, the kubelet goes on.
pub async fn embed(
    config: &BuiltinRuntimeConfig,
    cgroup_driver: CgroupDriver,
    socket: &Path,
    request_timeout: Duration,
) -> Result<InProcess<Runtime>, BuiltinError> {
    let runtime = open(options(config, cgroup_driver)).await?;
    let served = runtime.clone();
    let socket = socket.to_path_buf();
    tokio::spawn(async move {
        if let Err(error) = runtime_service::serve(served, &socket, std::future::pending()).await {
            tracing::error!(%error, "the built-in runtime is not served on its socket");
        }
    });
    Ok(InProcess::new(runtime, request_timeout))
}

/// `kubelet runtime`: serves until `shutdown` completes.
pub async fn serve_alone(
    command: RuntimeServe,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BuiltinError> {
    let runtime = open(options(&command.runtime, command.cgroup_driver)).await?;
    runtime_service::serve(runtime, &command.socket, shutdown).await?;
    tracing::info!("the runtime stopped; its containers keep running");
    Ok(())
}

/// `kubelet runtime import`: reports `NAME ID` for each name of each image (the id alone for an
/// image without a name) as each archive is imported, so what was imported before a failing
/// archive is reported too.
pub async fn import(
    command: RuntimeImport,
    mut report: impl FnMut(String),
) -> Result<(), BuiltinError> {
    // Import touches only the images: the rest keeps the runtime's defaults.
    let runtime = open(RuntimeOptions {
        root: command.root,
        state: command.state,
        ..RuntimeOptions::default()
    })
    .await?;
    for archive in command.archives {
        let images = runtime
            .images()
            .import(&archive)
            .await
            .map_err(BuiltinError::Import)?;
        for image in images {
            if image.repo_tags.is_empty() {
                report(image.id.clone());
            }
            for tag in &image.repo_tags {
                report(format!("{tag} {}", image.id));
            }
        }
    }
    Ok(())
}
