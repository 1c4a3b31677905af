//! With the systemd cgroup driver: the monitor's own transient scope, asked of systemd over D-Bus.
//!
//! systemd owns the cgroup tree there, so the monitor does not make cgroups itself: it asks
//! systemd (org.freedesktop.systemd1.Manager.StartTransientUnit) for a scope holding its pid,
//! `kubelet-rs-monitor-<id>.scope` in the pod's slice, as CRI-O does for conmon
//! (`crio-conmon-<id>.scope`). Stopping the daemon's service then leaves the monitor alone:
//! KillMode=control-group kills the unit's own cgroup only. The scope ends when the monitor does
//! (systemd stops an empty scope and, with CollectMode=inactive-or-failed, forgets it).

use futures::StreamExt;
use std::io;
use std::time::Duration;
use thiserror::Error;
use zbus::proxy::CacheProperties;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, Value};

/// How long connecting, asking and systemd's job together may take.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the monitor could not get its scope; each names the unit.
#[derive(Debug, Error)]
pub enum ScopeError {
    #[error("cannot run a D-Bus client for {unit}: {source}")]
    Runtime { unit: String, source: io::Error },
    #[error("cannot reach systemd on the system bus to create {unit}: {source}")]
    Connect {
        unit: String,
        source: Box<zbus::Error>,
    },
    #[error("systemd refused to create {unit} in {slice}: {source}")]
    Start {
        unit: String,
        slice: String,
        source: Box<zbus::Error>,
    },
    #[error(
        "systemd's job creating {unit} in {slice} ended with result {result:?} (see journalctl -u {unit})"
    )]
    Job {
        unit: String,
        slice: String,
        result: String,
    },
    #[error("the system bus closed before systemd created {unit}")]
    Closed { unit: String },
    #[error("systemd did not create {unit} within {} s", START_TIMEOUT.as_secs())]
    Timeout { unit: String },
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait SystemdManager {
    /// systemd sends its job signals only while some client is subscribed.
    fn subscribe(&self) -> zbus::Result<()>;

    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[(&str, Value<'_>)],
        aux: &[(&str, &[(&str, Value<'_>)])],
    ) -> zbus::Result<OwnedObjectPath>;

    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

/// The monitor scope of container `container_id`.
pub fn unit_name(container_id: &str) -> String {
    format!("kubelet-rs-monitor-{container_id}.scope")
}

/// Moves process `pid` into a new transient scope `unit` in `slice` and returns once systemd's
/// job is done. Blocking: it runs a current-thread tokio runtime that is gone on return, so the
/// monitor stays single-threaded.
pub fn start(unit: &str, slice: &str, pid: u32) -> Result<(), ScopeError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ScopeError::Runtime {
            unit: unit.to_string(),
            source,
        })?;
    runtime.block_on(async {
        tokio::time::timeout(START_TIMEOUT, start_scope(unit, slice, pid))
            .await
            .unwrap_or_else(|_| {
                Err(ScopeError::Timeout {
                    unit: unit.to_string(),
                })
            })
    })
}

async fn start_scope(unit: &str, slice: &str, pid: u32) -> Result<(), ScopeError> {
    let connect = |source| ScopeError::Connect {
        unit: unit.to_string(),
        source: Box::new(source),
    };
    let refused = |source| ScopeError::Start {
        unit: unit.to_string(),
        slice: slice.to_string(),
        source: Box::new(source),
    };
    let conn = zbus::Connection::system().await.map_err(connect)?;
    let manager = SystemdManagerProxy::builder(&conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(connect)?;
    // Listening before the job exists, so its JobRemoved cannot slip past.
    let mut removed = manager.receive_job_removed().await.map_err(connect)?;
    manager.subscribe().await.map_err(connect)?;
    let description = format!("kubelet-rs container monitor (pid {pid})");
    let properties = [
        ("Description", Value::from(description.as_str())),
        ("Slice", Value::from(slice)),
        ("PIDs", Value::from(vec![pid])),
        // As runc does for container scopes: no ordering against shutdown.target, so the scope
        // can start at any time, even while the node shuts down.
        ("DefaultDependencies", Value::from(false)),
        // A monitor killed by a signal leaves no failed unit behind.
        ("CollectMode", Value::from("inactive-or-failed")),
    ];
    let job = manager
        .start_transient_unit(unit, "replace", &properties, &[])
        .await
        .map_err(refused)?;
    tracing::debug!(unit, slice, job = %job.as_str(), "transient scope requested");
    while let Some(signal) = removed.next().await {
        let Ok(args) = signal.args() else { continue };
        if args.job.as_str() != job.as_str() {
            continue;
        }
        return match args.result {
            "done" => Ok(()),
            result => Err(ScopeError::Job {
                unit: unit.to_string(),
                slice: slice.to_string(),
                result: result.to_string(),
            }),
        };
    }
    Err(ScopeError::Closed {
        unit: unit.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_the_container() {
        assert_eq!(unit_name("abc123"), "kubelet-rs-monitor-abc123.scope");
    }

    #[test]
    fn errors_name_the_unit_and_the_cause() {
        let err = ScopeError::Job {
            unit: unit_name("abc"),
            slice: "kubepods-besteffort-pod1.slice".into(),
            result: "failed".into(),
        };
        assert_eq!(
            err.to_string(),
            "systemd's job creating kubelet-rs-monitor-abc.scope in kubepods-besteffort-pod1.slice \
             ended with result \"failed\" (see journalctl -u kubelet-rs-monitor-abc.scope)"
        );
    }
}
