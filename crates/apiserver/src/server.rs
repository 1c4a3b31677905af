//! The HTTP server and the handle tests hold: start, stop and restart the listener, reach
//! the store.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::store::Store;
use crate::{discovery, rest};

/// How often a watch that allows bookmarks gets one; the real server sends them about
/// once a minute, tests want them sooner.
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub bookmark_interval: Duration,
}

/// The routes of the API server over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/version", get(discovery::version))
        .route("/api", get(discovery::core_versions))
        .route("/api/v1", get(discovery::core_resources))
        .route("/apis", get(discovery::groups))
        .route("/apis/{group}", get(discovery::group))
        .route("/apis/{group}/{version}", get(discovery::group_resources))
        .fallback(rest::handle)
        .with_state(state)
}

/// Serves `router` on `listener` until this future is dropped; dropping it also closes every
/// open connection (watches included), as a stopped API server would.
pub async fn serve(listener: TcpListener, router: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let service = TowerToHyperService::new(router.clone());
                    connections.spawn(async move {
                        let conn = auto::Builder::new(TokioExecutor::new())
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .await;
                        if let Err(e) = conn {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "accepting a connection failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Why the test API server could not listen.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot start the test API server's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running test API server on 127.0.0.1, on a runtime of its own so it serves whatever
/// the test does (blocking on kubectl, or running its own runtime).
pub struct TestApiServer {
    runtime: Option<tokio::runtime::Runtime>,
    state: AppState,
    addr: SocketAddr,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl TestApiServer {
    /// Starts a server on a random port of 127.0.0.1 with an empty cluster (its namespaces).
    /// Panics when it cannot, as a test cannot go on without it.
    pub fn start() -> Self {
        Self::try_start(DEFAULT_BOOKMARK_INTERVAL).expect("the test API server starts")
    }

    pub fn try_start(bookmark_interval: Duration) -> Result<Self, ServerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("test-apiserver")
            .build()
            .map_err(ServerError::Runtime)?;
        let mut server = TestApiServer {
            runtime: Some(runtime),
            state: AppState {
                store: Store::new(),
                bookmark_interval,
            },
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            listener: Mutex::new(None),
        };
        server.addr = server.listen(server.addr)?;
        Ok(server)
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives until drop")
    }

    fn listen(&self, addr: SocketAddr) -> Result<SocketAddr, ServerError> {
        let listen_error = |source| ServerError::Listen { addr, source };
        let std_listener = std::net::TcpListener::bind(addr).map_err(listen_error)?;
        std_listener.set_nonblocking(true).map_err(listen_error)?;
        let bound = std_listener.local_addr().map_err(listen_error)?;
        let router = router(self.state.clone());
        let task = self.runtime().spawn(async move {
            match TcpListener::from_std(std_listener) {
                Ok(listener) => serve(listener, router).await,
                Err(e) => tracing::error!(error = %e, "cannot register the listener"),
            }
        });
        if let Some(old) = self.lock_listener().replace(task) {
            old.abort();
        }
        Ok(bound)
    }

    fn lock_listener(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.listener.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The base URL, http://127.0.0.1:PORT.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The cluster state, for tests to read and set objects directly.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Forgets the change history: watches from older versions get 410 Gone.
    pub fn compact(&self) {
        self.state.store.compact();
    }

    /// Closes the listener and every open connection; the state is kept.
    pub fn stop_listener(&self) {
        if let Some(task) = self.lock_listener().take() {
            task.abort();
        }
    }

    /// Listens again on the same address after [`stop_listener`](Self::stop_listener).
    pub fn restart_listener(&self) -> Result<(), ServerError> {
        self.stop_listener();
        self.listen(self.addr).map(drop)
    }

    /// Writes a kubeconfig whose only cluster, user and context point at this server.
    pub fn kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n\
             users:\n- name: test\n  user: {{}}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n\
             current-context: test\n",
            self.url()
        );
        std::fs::write(path, config)
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        self.stop_listener();
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime may happen inside a test's own runtime, where blocking is not allowed.
            runtime.shutdown_background();
        }
    }
}
