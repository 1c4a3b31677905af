//! What the test kit's gRPC plugins (the device plugin, the CSI driver) share: a one-worker
//! runtime on a thread of their own serving unix sockets, and the calls they receive, recorded
//! in order. Dropping the server stops the runtime, which ends every connection as a plugin's
//! death would, and removes its sockets.

use kubelet_plugin_apis::pluginregistration::v1 as reg;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tokio::net::UnixListener;
use tokio::runtime::Runtime;
use tonic::{Request, Response, Status};

#[derive(Debug, Error)]
pub enum PluginServerError {
    #[error("cannot bind {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the plugin's runtime: {0}")]
    Runtime(std::io::Error),
}

/// The calls a plugin received, in order.
pub(crate) type Calls = Arc<Mutex<Vec<String>>>;

pub(crate) fn record(calls: &Calls, call: String) {
    calls.lock().unwrap_or_else(|e| e.into_inner()).push(call);
}

pub(crate) fn recorded(calls: &Calls) -> Vec<String> {
    calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

pub(crate) struct PluginServer {
    sockets: Vec<PathBuf>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The runtime a plugin's listeners are bound in and served on.
pub(crate) fn runtime() -> Result<Runtime, PluginServerError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(PluginServerError::Runtime)
}

/// Binds a unix socket at `path`, replacing a stale one; call it inside `runtime.enter()`.
pub(crate) fn bind(path: &Path) -> Result<UnixListener, PluginServerError> {
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path).map_err(|source| PluginServerError::Bind {
        path: path.to_path_buf(),
        source,
    })
}

impl PluginServer {
    /// Runs `serve`, which spawns the plugin's servers, on `runtime` until dropped; `sockets`
    /// are removed then.
    pub(crate) fn start(
        runtime: Runtime,
        sockets: Vec<PathBuf>,
        serve: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                serve.await;
                let _ = stopped.await;
            });
            runtime.shutdown_background();
        });
        PluginServer {
            sockets,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for PluginServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        for s in &self.sockets {
            let _ = std::fs::remove_file(s);
        }
    }
}

/// The plugin watcher's side of a plugin (pluginregistration v1): GetInfo answers `info`, and
/// both calls are recorded, the status as "NotifyRegistrationStatus REGISTERED ERROR".
pub(crate) struct Registrar {
    pub info: reg::PluginInfo,
    pub calls: Calls,
}

#[tonic::async_trait]
impl reg::registration_server::Registration for Registrar {
    async fn get_info(
        &self,
        _: Request<reg::InfoRequest>,
    ) -> Result<Response<reg::PluginInfo>, Status> {
        record(&self.calls, "GetInfo".into());
        Ok(Response::new(self.info.clone()))
    }

    async fn notify_registration_status(
        &self,
        request: Request<reg::RegistrationStatus>,
    ) -> Result<Response<reg::RegistrationStatusResponse>, Status> {
        let s = request.into_inner();
        record(
            &self.calls,
            format!(
                "NotifyRegistrationStatus {} {}",
                s.plugin_registered, s.error
            ),
        );
        Ok(Response::new(reg::RegistrationStatusResponse {}))
    }
}
