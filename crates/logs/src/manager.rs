//! The container log manager: rotates the logs of running containers when they grow past the
//! size limit, and removes a container's logs when asked (upstream containerLogManager).

use crate::error::{FileError, LogError};
use crate::files::{files_starting_with, prepare_rotation, remove, rotated_path};
use kubelet_cri::RuntimeService;
use kubelet_cri::api::ContainerState;
use std::fmt;
use std::fs;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;
use tokio::time::MissedTickBehavior;
use tracing::{debug, error, info, warn};

/// Upstream's containerLogMonitorInterval default.
pub const DEFAULT_MONITOR_INTERVAL: Duration = Duration::from_secs(10);

/// The wall clock that stamps rotated logs; tests inject their own.
pub type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Rotates and cleans container logs, given the limits of containerLogMaxSize and
/// containerLogMaxFiles.
pub struct ContainerLogManager {
    runtime: Arc<dyn RuntimeService>,
    max_size: u64,
    max_files: u32,
    monitor_interval: Duration,
    clock: WallClock,
    // Upstream serialises rotation passes and Clean, so a cleanup never races a rename.
    busy: Mutex<()>,
}

impl fmt::Debug for ContainerLogManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerLogManager")
            .field("max_size", &self.max_size)
            .field("max_files", &self.max_files)
            .field("monitor_interval", &self.monitor_interval)
            .finish_non_exhaustive()
    }
}

impl ContainerLogManager {
    /// A log is rotated once it reaches `max_size` bytes; at most `max_files` files (the live
    /// one included) are kept per container log. Like upstream, `max_files` must be at least 2.
    pub fn new(
        runtime: Arc<dyn RuntimeService>,
        max_size: u64,
        max_files: u32,
    ) -> Result<Self, LogError> {
        if max_files < 2 {
            return Err(LogError::InvalidMaxFiles(max_files));
        }
        Ok(ContainerLogManager {
            runtime,
            max_size,
            max_files,
            monitor_interval: DEFAULT_MONITOR_INTERVAL,
            clock: Arc::new(SystemTime::now),
            busy: Mutex::new(()),
        })
    }

    /// How often [`run`](Self::run) makes a rotation pass (containerLogMonitorInterval).
    pub fn with_monitor_interval(mut self, interval: Duration) -> Self {
        self.monitor_interval = interval;
        self
    }

    pub fn with_clock(mut self, clock: WallClock) -> Self {
        self.clock = clock;
        self
    }

    /// Makes a rotation pass every monitor interval, starting now, until `shutdown` completes.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        info!(interval = ?self.monitor_interval, max_size = self.max_size, max_files = self.max_files, "starting container log rotation");
        let mut ticks = tokio::time::interval(self.monitor_interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = ticks.tick() => {
                    if let Err(e) = self.rotate_once().await {
                        error!(error = %e, "container log rotation");
                    }
                }
            }
        }
        info!("stopped container log rotation");
    }

    /// One pass over the running containers: rotates each log that reached the size limit.
    /// A container that fails does not stop the others; their errors come back together.
    pub async fn rotate_once(&self) -> Result<(), LogError> {
        let _busy = self.busy.lock().await;
        let containers = self
            .runtime
            .list_containers(None)
            .await
            .map_err(LogError::ListContainers)?;
        let mut errors = Vec::new();
        // Exited containers write nothing more, and a fresh empty file for them is useless.
        let running = containers
            .iter()
            .filter(|c| c.state == ContainerState::ContainerRunning as i32);
        for container in running {
            if let Err(e) = self.rotate_container(&container.id).await {
                warn!(error = %e, "container log rotation");
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(LogError::Rotation { errors })
        }
    }

    /// Removes all of a container's log files: the live one, rotated and compressed copies.
    pub async fn clean(&self, container_id: &str) -> Result<(), LogError> {
        let _busy = self.busy.lock().await;
        remove_container_logs(self.runtime.as_ref(), container_id).await
    }

    async fn rotate_container(&self, container_id: &str) -> Result<(), LogError> {
        let in_container = |source| LogError::ContainerFile {
            container_id: container_id.to_string(),
            source,
        };
        let log = match self.log_path(container_id).await {
            Ok(Some(log)) => log,
            Ok(None) => return Ok(()),
            // Removed between the listing and now: nothing left to rotate.
            Err(LogError::ContainerStatus { source, .. }) if source.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let size = match log_size(&log) {
            Ok(size) => size,
            Err(e) if e.source.kind() == io::ErrorKind::NotFound => {
                // The file went away under the runtime (removed by hand, or a rotation that
                // died mid-way): have it open a new one, as upstream does.
                self.reopen(container_id, &log).await?;
                log_size(&log).map_err(in_container)?
            }
            Err(e) => return Err(in_container(e)),
        };
        if size < self.max_size {
            return Ok(());
        }

        let (to_prepare, max_files) = (log.clone(), self.max_files);
        // Compression reads whole files: keep it off the async workers.
        tokio::task::spawn_blocking(move || prepare_rotation(&to_prepare, max_files))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            .map_err(in_container)?;

        let rotated = rotated_path(&log, (self.clock)())?;
        fs::rename(&log, &rotated)
            .map_err(|e| in_container(FileError::new("rotating", &log, e)))?;
        if let Err(e) = self.reopen(container_id, &log).await {
            // Put the file back so the next pass retries; left renamed, the runtime would go on
            // writing into a file already counted as rotated.
            if let Err(back) = fs::rename(&rotated, &log) {
                error!(container_id, rotated = %rotated.display(), log = %log.display(), error = %back, "cannot move the rotated log back");
            }
            return Err(e);
        }
        info!(container_id, log = %log.display(), rotated = %rotated.display(), size, "rotated container log");
        Ok(())
    }

    async fn log_path(&self, container_id: &str) -> Result<Option<PathBuf>, LogError> {
        log_path(self.runtime.as_ref(), container_id).await
    }

    async fn reopen(&self, container_id: &str, log: &Path) -> Result<(), LogError> {
        self.runtime
            .reopen_container_log(container_id)
            .await
            .map_err(|source| LogError::ReopenLog {
                container_id: container_id.to_string(),
                path: log.to_path_buf(),
                source,
            })
    }
}

fn log_size(log: &Path) -> Result<u64, FileError> {
    fs::metadata(log)
        .map(|m| m.len())
        .map_err(|e| FileError::new("reading the size of", log, e))
}

/// The container's log path as the runtime reports it; `None` when it has none.
async fn log_path(
    runtime: &dyn RuntimeService,
    container_id: &str,
) -> Result<Option<PathBuf>, LogError> {
    let status = runtime
        .container_status(container_id)
        .await
        .map_err(|source| LogError::ContainerStatus {
            container_id: container_id.to_string(),
            source,
        })?;
    if status.log_path.is_empty() {
        debug!(container_id, "container has no log path");
        return Ok(None);
    }
    Ok(Some(PathBuf::from(status.log_path)))
}

/// Removes all of a container's log files (the live one, rotated and compressed copies), as
/// upstream's container garbage collection does before the container goes. Outside a
/// [`ContainerLogManager`], the container must no longer run: a rotation could race it.
pub async fn remove_container_logs(
    runtime: &dyn RuntimeService,
    container_id: &str,
) -> Result<(), LogError> {
    let Some(log) = log_path(runtime, container_id).await? else {
        return Ok(());
    };
    let in_container = |source| LogError::ContainerFile {
        container_id: container_id.to_string(),
        source,
    };
    for file in files_starting_with(&log, "").map_err(in_container)? {
        remove(&file, "removing log").map_err(in_container)?;
    }
    debug!(container_id, log = %log.display(), "removed container logs");
    Ok(())
}
