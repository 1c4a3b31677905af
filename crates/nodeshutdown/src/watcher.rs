//! The shutdown watcher (upstream managerImpl.start and the systemd DBusCon): it holds a delay
//! inhibitor lock on logind so a shutdown waits for the kubelet, and wakes the kubelet when
//! logind announces one.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use zbus::proxy::CacheProperties;
use zbus::zvariant::OwnedFd;

use crate::logind::{
    INHIBIT_MODE, INHIBIT_WHAT, INHIBIT_WHO, INHIBIT_WHY, LOGIND_UNIT, LogindManagerProxy,
    PrepareForShutdownStream, SIGHUP, SystemdManagerProxy,
};
use crate::{ShutdownBudget, ShutdownConfig, ShutdownError, inhibit_delay};

/// Connected to logind, holding (between shutdowns) the kubelet's delay inhibitor lock.
#[derive(Debug)]
pub struct ShutdownWatcher {
    address: String,
    logind: LogindManagerProxy<'static>,
    signals: PrepareForShutdownStream,
    lock: Option<OwnedFd>,
    budget: ShutdownBudget,
    shutting_down: watch::Sender<bool>,
}

impl ShutdownWatcher {
    /// Connects to the system bus, makes sure logind lets a delay lock last the whole grace
    /// period (a logind.conf.d drop-in and a logind reload when it does not), subscribes to
    /// PrepareForShutdown and takes the inhibitor lock. `Ok(None)` when the config turns the
    /// feature off; D-Bus is not touched then.
    pub async fn start(cfg: ShutdownConfig) -> Result<Option<Self>, ShutdownError> {
        let Some(budget) = ShutdownBudget::from_config(&cfg) else {
            if cfg.grace_period.is_zero() {
                tracing::info!(
                    "no shutdown grace period configured, node shutdown will be immediate"
                );
            } else {
                tracing::warn!(
                    grace_period = ?cfg.grace_period,
                    critical_grace_period = ?cfg.critical_grace_period,
                    "critical pods' shutdown grace period exceeds the whole, node shutdown will be immediate"
                );
            }
            return Ok(None);
        };
        let address = cfg.resolved_bus_address();
        let connect_error = |source| ShutdownError::Connect {
            address: address.clone(),
            source: Box::new(source),
        };
        let conn = zbus::connection::Builder::address(address.as_str())
            .map_err(connect_error)?
            .build()
            .await
            .map_err(connect_error)?;
        // Uncached, so the delay is read again after the reload, as upstream does.
        let logind = LogindManagerProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(call_error(
                &address,
                "creating the org.freedesktop.login1.Manager proxy",
            ))?;
        tracing::info!(%address, ?budget, "node shutdown manager connected to logind");

        ensure_inhibit_delay(
            &conn,
            &logind,
            &address,
            &cfg.logind_conf_dir,
            budget.total(),
        )
        .await?;
        // Subscribed before the lock is taken so no signal falls in between.
        let signals = logind
            .receive_prepare_for_shutdown()
            .await
            .map_err(call_error(&address, "subscribing to PrepareForShutdown"))?;
        let lock = take_lock(&logind, &address).await?;
        Ok(Some(Self {
            address,
            logind,
            signals,
            lock: Some(lock),
            budget,
            shutting_down: watch::channel(false).0,
        }))
    }

    /// Waits for PrepareForShutdown(true) and returns the time each pod group gets. A
    /// PrepareForShutdown(false) in between (the shutdown was cancelled) takes the lock again, as
    /// upstream, and the wait goes on.
    pub async fn next_shutdown(&mut self) -> Result<ShutdownBudget, ShutdownError> {
        loop {
            let signal =
                self.signals
                    .next()
                    .await
                    .ok_or_else(|| ShutdownError::SignalStreamEnded {
                        address: self.address.clone(),
                    })?;
            let start = match signal.args() {
                Ok(args) => args.start,
                Err(err) => {
                    tracing::error!(%err, "malformed PrepareForShutdown signal from logind, ignored");
                    continue;
                }
            };
            self.shutting_down.send_replace(start);
            if start {
                tracing::info!(budget = ?self.budget, "shutdown manager detected a node shutdown");
                return Ok(self.budget);
            }
            tracing::info!(
                "shutdown manager detected a shutdown cancellation, taking the inhibitor lock again"
            );
            match take_lock(&self.logind, &self.address).await {
                // The old lock (if still held) closes only now, so the node is never unguarded.
                Ok(lock) => self.lock = Some(lock),
                Err(err) => tracing::error!(%err, "taking the inhibitor lock again failed"),
            }
        }
    }

    /// Closes the inhibitor lock's fd once the pods are stopped, so the shutdown proceeds. The
    /// watcher keeps listening: a later cancellation takes the lock again.
    pub fn release(&mut self) {
        if self.lock.take().is_some() {
            tracing::info!(
                "shutdown manager released the inhibitor lock, node will shut down shortly"
            );
        }
    }

    /// Whether a shutdown is under way (true from PrepareForShutdown(true) until a cancellation):
    /// admission rejects new pods and the node reports NotReady meanwhile.
    pub fn shutting_down(&self) -> watch::Receiver<bool> {
        self.shutting_down.subscribe()
    }

    /// The time each pod group gets once a shutdown starts.
    pub fn budget(&self) -> ShutdownBudget {
        self.budget
    }
}

/// Raises logind's InhibitDelayMaxSec to `requested` when it is lower (upstream start()):
/// write the drop-in, SIGHUP logind through systemd, read the value back.
async fn ensure_inhibit_delay(
    conn: &zbus::Connection,
    logind: &LogindManagerProxy<'_>,
    address: &str,
    conf_dir: &Path,
    requested: Duration,
) -> Result<(), ShutdownError> {
    let current = inhibit_delay_max(logind, address).await?;
    if requested <= current {
        return Ok(());
    }
    let path = inhibit_delay::write_override(conf_dir, requested)?;
    tracing::info!(?current, ?requested, path = %path.display(), "raising logind's InhibitDelayMaxSec");
    let systemd = SystemdManagerProxy::new(conn).await.map_err(call_error(
        address,
        "creating the org.freedesktop.systemd1.Manager proxy",
    ))?;
    systemd
        .kill_unit(LOGIND_UNIT, "all", SIGHUP)
        .await
        .map_err(call_error(
            address,
            "org.freedesktop.systemd1.Manager.KillUnit",
        ))?;
    let updated = inhibit_delay_max(logind, address).await?;
    if requested > updated {
        return Err(ShutdownError::InhibitDelayTooShort {
            address: address.to_string(),
            current: updated,
            requested,
        });
    }
    Ok(())
}

async fn inhibit_delay_max(
    logind: &LogindManagerProxy<'_>,
    address: &str,
) -> Result<Duration, ShutdownError> {
    let usec = logind.inhibit_delay_max_usec().await.map_err(call_error(
        address,
        "reading org.freedesktop.login1.Manager.InhibitDelayMaxUSec",
    ))?;
    Ok(Duration::from_micros(usec))
}

async fn take_lock(
    logind: &LogindManagerProxy<'_>,
    address: &str,
) -> Result<OwnedFd, ShutdownError> {
    let lock = logind
        .inhibit(INHIBIT_WHAT, INHIBIT_WHO, INHIBIT_WHY, INHIBIT_MODE)
        .await
        .map_err(call_error(
            address,
            "org.freedesktop.login1.Manager.Inhibit",
        ))?;
    tracing::info!("shutdown manager took a delay inhibitor lock for shutdown");
    Ok(lock)
}

fn call_error(address: &str, call: &'static str) -> impl FnOnce(zbus::Error) -> ShutdownError {
    let address = address.to_string();
    move |source| ShutdownError::Call {
        address,
        call,
        source: Box::new(source),
    }
}
