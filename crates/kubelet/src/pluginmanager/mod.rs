//! Plugin registration through `<root dir>/plugins_registry` (upstream pkg/kubelet/pluginmanager):
//! a plugin puts a socket there serving pluginregistration v1; the kubelet asks it GetInfo,
//! validates, hands it to the handler of its type, tells it the outcome
//! (NotifyRegistrationStatus), and deregisters it when the socket goes. The directory is
//! watched with inotify and rescanned periodically, so nothing is missed. A registration that
//! fails (GetInfo unanswered, or refused by its handler) is tried again with upstream's
//! exponential back-off, at once if its socket is re-created.

mod handlers;
mod retries;

use handlers::Handlers;
use kubelet_plugin_apis::pluginregistration::v1::registration_client::RegistrationClient;
use kubelet_plugin_apis::pluginregistration::v1::{InfoRequest, PluginInfo, RegistrationStatus};
use kubelet_plugin_apis::unix;
use notify::Watcher;
use retries::{Identity, Retries};
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

pub use handlers::{CSI_PLUGIN, DEVICE_PLUGIN, DRA_PLUGIN};

pub const PLUGINS_REGISTRY_DIR: &str = "plugins_registry";
/// How often the directory is rescanned when no inotify event came.
const RESCAN_PERIOD: Duration = Duration::from_secs(1);
/// Upstream's dial and call timeout for a registration socket.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A registered plugin: its type and name, and which socket file (by inode and change time)
/// it came from, so a socket re-created in place registers again.
#[derive(Debug, Clone, PartialEq)]
struct Registered {
    kind: String,
    name: String,
    identity: Identity,
}

/// The sockets in `dir` and below, hidden files skipped (upstream's walk).
fn sockets(dir: &Path) -> BTreeMap<PathBuf, Identity> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                pending.push(e.path());
            } else if meta.file_type().is_socket() {
                found.insert(
                    e.path(),
                    (meta.ino(), meta.ctime_nsec() + meta.ctime() * 1_000_000_000),
                );
            }
        }
    }
    found
}

pub struct PluginManager {
    dir: PathBuf,
    handlers: Handlers,
    registered: BTreeMap<PathBuf, Registered>,
    retries: Retries,
}

impl PluginManager {
    pub fn new(
        root_dir: &Path,
        devices: crate::devicemanager::DeviceManager,
        csi: crate::csi::CsiPlugins,
    ) -> Self {
        PluginManager {
            dir: root_dir.join(PLUGINS_REGISTRY_DIR),
            handlers: Handlers { devices, csi },
            registered: BTreeMap::new(),
            retries: Retries::default(),
        }
    }

    /// Registers the socket; a failure is remembered and its back-off extended.
    async fn register(&mut self, socket: &Path, identity: Identity) {
        match self.try_register(socket).await {
            Some(registered) => {
                self.retries.succeeded(socket);
                self.registered.insert(
                    socket.to_path_buf(),
                    Registered {
                        kind: registered.0,
                        name: registered.1,
                        identity,
                    },
                );
            }
            None => {
                let wait = self.retries.failed(socket, identity, Instant::now());
                tracing::info!(socket = %socket.display(), "plugin registration will be retried in {wait:?}");
            }
        }
    }

    /// GetInfo, the handler, NotifyRegistrationStatus: the plugin's (type, name) once its
    /// handler took it.
    async fn try_register(&self, socket: &Path) -> Option<(String, String)> {
        let mut client = RegistrationClient::new(unix::channel(socket));
        let info = match tokio::time::timeout(CALL_TIMEOUT, client.get_info(InfoRequest {})).await {
            Ok(Ok(info)) => info.into_inner(),
            Ok(Err(e)) => {
                tracing::warn!(socket = %socket.display(), "plugin GetInfo failed: {}", e.message());
                return None;
            }
            Err(_) => {
                tracing::warn!(socket = %socket.display(), "plugin GetInfo timed out");
                return None;
            }
        };
        let PluginInfo {
            r#type: kind,
            name,
            endpoint,
            supported_versions,
        } = info;
        let endpoint = if endpoint.is_empty() {
            socket.to_path_buf()
        } else {
            PathBuf::from(endpoint)
        };
        let outcome = self
            .handlers
            .register(&kind, &name, &endpoint, &supported_versions)
            .await;
        let status = match &outcome {
            Ok(()) => {
                tracing::info!(kind, name, socket = %socket.display(), "plugin registered");
                RegistrationStatus {
                    plugin_registered: true,
                    error: String::new(),
                }
            }
            Err(e) => {
                tracing::error!(kind, name, socket = %socket.display(), "plugin registration failed: {e}");
                RegistrationStatus {
                    plugin_registered: false,
                    error: format!("plugin registration failed with err: {e}"),
                }
            }
        };
        if let Err(e) = client.notify_registration_status(status).await {
            tracing::warn!(socket = %socket.display(), "NotifyRegistrationStatus failed: {}", e.message());
        }
        outcome.ok().map(|()| (kind, name))
    }

    /// One pass: registers new or re-created sockets, deregisters vanished ones.
    async fn reconcile(&mut self) {
        let present = sockets(&self.dir);
        let gone: Vec<PathBuf> = self
            .registered
            .iter()
            .filter(|(path, r)| present.get(*path) != Some(&r.identity))
            .map(|(path, _)| path.clone())
            .collect();
        for path in gone {
            if let Some(r) = self.registered.remove(&path) {
                tracing::info!(kind = r.kind, name = r.name, socket = %path.display(), "plugin socket gone, deregistering");
                self.handlers.deregister(&r.kind, &r.name);
            }
        }
        self.retries.retain_present(&present);
        let now = Instant::now();
        for (path, identity) in present {
            if !self.registered.contains_key(&path) && self.retries.due(&path, identity, now) {
                self.register(&path, identity).await;
            }
        }
    }

    /// Creates the directory and reconciles forever: on every inotify event and every
    /// [`RESCAN_PERIOD`].
    pub async fn run(mut self) {
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            tracing::error!(dir = %self.dir.display(), "cannot create the plugin registration directory: {e}");
            return;
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
            let _ = tx.send(());
        })
        .and_then(|mut w| {
            w.watch(&self.dir, notify::RecursiveMode::Recursive)?;
            Ok(w)
        });
        // Without inotify the rescan alone finds plugins, a second later.
        let _watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("cannot watch {}: {e}; rescanning only", self.dir.display());
                None
            }
        };
        loop {
            self.reconcile().await;
            tokio::select! {
                _ = rx.recv() => {}
                _ = tokio::time::sleep(RESCAN_PERIOD) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sockets_below_the_dir_but_not_hidden_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let _a = std::os::unix::net::UnixListener::bind(dir.path().join("a.sock")).unwrap();
        let _b = std::os::unix::net::UnixListener::bind(dir.path().join("sub/b.sock")).unwrap();
        let _h = std::os::unix::net::UnixListener::bind(dir.path().join(".hidden")).unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        let found: Vec<PathBuf> = sockets(dir.path()).into_keys().collect();
        assert_eq!(
            found,
            vec![dir.path().join("a.sock"), dir.path().join("sub/b.sock")]
        );
    }
}
