//! systemd's manager on the system bus, from synchronous code: a thread of its own runs a
//! current-thread tokio runtime with one zbus connection, takes calls over a channel and
//! answers each once systemd's job for it has finished. The cgroup manager seam stays
//! synchronous, and the connection is never driven from the kubelet's own runtime.

use super::SystemdError;
use super::properties::{Prop, Properties};
use futures::StreamExt;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;
use tokio::sync::mpsc;
use zbus::proxy::CacheProperties;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, Value};

/// How long systemd's job for one unit may take (runc waits as long).
pub const JOB_TIMEOUT: Duration = Duration::from_secs(30);
const UNIT_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Systemd1Manager {
    /// systemd sends its job signals only while some client is subscribed.
    fn subscribe(&self) -> zbus::Result<()>;

    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[(&str, Value<'_>)],
        aux: &[(&str, &[(&str, Value<'_>)])],
    ) -> zbus::Result<OwnedObjectPath>;

    fn set_unit_properties(
        &self,
        name: &str,
        runtime: bool,
        properties: &[(&str, Value<'_>)],
    ) -> zbus::Result<()>;

    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;

    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;

    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

#[derive(Debug)]
enum Call {
    Set(Properties),
    Job(JobCall),
}

/// The calls systemd answers with a job, whose end the caller waits for.
#[derive(Debug)]
enum JobCall {
    Start(Properties),
    Stop,
}

impl Call {
    fn method(&self) -> &'static str {
        match self {
            Call::Set(_) => "SetUnitProperties",
            Call::Job(JobCall::Start(_)) => "StartTransientUnit",
            Call::Job(JobCall::Stop) => "StopUnit",
        }
    }
}

#[derive(Debug)]
struct Request {
    unit: String,
    call: Call,
    reply: std_mpsc::SyncSender<Result<(), SystemdError>>,
}

/// The handle of the D-Bus thread; it ends when the handle is dropped.
#[derive(Debug)]
pub struct Bus {
    requests: mpsc::UnboundedSender<Request>,
    /// The major version of the systemd answering.
    pub version: u32,
}

impl Bus {
    /// Starts the thread and connects, so that an unreachable systemd fails the kubelet's start.
    pub fn start() -> Result<Self, SystemdError> {
        let (requests, mut incoming) = mpsc::unbounded_channel::<Request>();
        let (ready_tx, ready) = std_mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("systemd-dbus".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(source) => {
                        let _ = ready_tx.send(Err(SystemdError::Thread(source)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let mut conn = match Connection::open().await {
                        Ok((conn, version)) => {
                            let _ = ready_tx.send(Ok(version));
                            Some(conn)
                        }
                        Err(err) => {
                            let _ = ready_tx.send(Err(err));
                            return;
                        }
                    };
                    while let Some(request) = incoming.recv().await {
                        let result = serve(&mut conn, &request).await;
                        let _ = request.reply.send(result);
                    }
                });
            })
            .map_err(SystemdError::Thread)?;
        let version = ready.recv().map_err(|_| SystemdError::Gone)??;
        Ok(Self { requests, version })
    }

    fn call(&self, unit: &str, call: Call) -> Result<(), SystemdError> {
        let (reply, answer) = std_mpsc::sync_channel(1);
        self.requests
            .send(Request {
                unit: unit.to_string(),
                call,
                reply,
            })
            .map_err(|_| SystemdError::Gone)?;
        answer.recv().map_err(|_| SystemdError::Gone)?
    }

    /// StartTransientUnit, done when the unit exists already (runc's slice creation).
    pub fn start_unit(&self, unit: &str, properties: Properties) -> Result<(), SystemdError> {
        self.call(unit, Call::Job(JobCall::Start(properties)))
    }

    pub fn set_properties(&self, unit: &str, properties: Properties) -> Result<(), SystemdError> {
        self.call(unit, Call::Set(properties))
    }

    /// StopUnit, done when the unit is not loaded; a failed unit is reset so systemd forgets it.
    pub fn stop_unit(&self, unit: &str) -> Result<(), SystemdError> {
        self.call(unit, Call::Job(JobCall::Stop))
    }
}

struct Connection {
    manager: Systemd1ManagerProxy<'static>,
}

impl Connection {
    async fn open() -> Result<(Self, u32), SystemdError> {
        let connect = |source| SystemdError::Connect {
            source: Box::new(source),
        };
        let conn = zbus::Connection::system().await.map_err(connect)?;
        let manager = Systemd1ManagerProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(connect)?;
        manager.subscribe().await.map_err(connect)?;
        let version = manager.version().await.map_err(connect)?;
        Ok((Self { manager }, super::properties::major_version(&version)))
    }
}

/// One request, once more on a fresh connection when the last one broke (runc's
/// retryOnDisconnect).
async fn serve(conn: &mut Option<Connection>, request: &Request) -> Result<(), SystemdError> {
    match run_on(conn, request).await {
        Err(SystemdError::Call { source, .. })
            if matches!(*source, zbus::Error::InputOutput(_)) =>
        {
            *conn = None;
            run_on(conn, request).await
        }
        other => other,
    }
}

async fn run_on(conn: &mut Option<Connection>, request: &Request) -> Result<(), SystemdError> {
    let current = match conn {
        Some(current) => current,
        None => conn.insert(Connection::open().await?.0),
    };
    run(current, request).await
}

fn method_error(err: &zbus::Error) -> Option<&str> {
    match err {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str()),
        _ => None,
    }
}

async fn run(conn: &Connection, request: &Request) -> Result<(), SystemdError> {
    let unit = request.unit.as_str();
    let refused = |source| SystemdError::Call {
        unit: unit.to_string(),
        method: request.call.method(),
        source: Box::new(source),
    };
    let manager = &conn.manager;
    let job_call = match &request.call {
        // No job: systemd applies the properties before it answers.
        Call::Set(properties) => {
            return manager
                .set_unit_properties(unit, true, &values(properties))
                .await
                .map_err(refused);
        }
        Call::Job(job_call) => job_call,
    };
    // Listening before the job exists, so its JobRemoved cannot slip past.
    let mut removed = manager.receive_job_removed().await.map_err(refused)?;
    let job = match job_call {
        JobCall::Start(properties) => {
            let values = values(properties);
            match manager
                .start_transient_unit(unit, "replace", &values, &[])
                .await
            {
                Ok(job) => job,
                Err(err) if method_error(&err) == Some(UNIT_EXISTS) => return Ok(()),
                Err(err) => return Err(refused(err)),
            }
        }
        JobCall::Stop => match manager.stop_unit(unit, "replace").await {
            Ok(job) => job,
            Err(err) if method_error(&err) == Some(NO_SUCH_UNIT) => return Ok(()),
            Err(err) => return Err(refused(err)),
        },
    };
    let result = tokio::time::timeout(JOB_TIMEOUT, async {
        while let Some(signal) = removed.next().await {
            let Ok(args) = signal.args() else { continue };
            if args.job.as_str() == job.as_str() {
                return Some(args.result.to_string());
            }
        }
        None
    })
    .await;
    let outcome = match result {
        Err(_) => Err(SystemdError::Timeout {
            unit: unit.to_string(),
            method: request.call.method(),
        }),
        Ok(None) => Err(SystemdError::Closed {
            unit: unit.to_string(),
        }),
        Ok(Some(result)) if result == "done" => Ok(()),
        Ok(Some(result)) => Err(SystemdError::Job {
            unit: unit.to_string(),
            method: request.call.method(),
            result,
        }),
    };
    if outcome.is_err() || matches!(job_call, JobCall::Stop) {
        // A unit whose job failed stays loaded as failed; resetting lets systemd drop it.
        if let Err(err) = manager.reset_failed_unit(unit).await
            && method_error(&err) != Some(NO_SUCH_UNIT)
        {
            tracing::debug!(unit, error = %err, "cannot reset the failed unit");
        }
    }
    outcome
}

fn values(properties: &Properties) -> Vec<(&'static str, Value<'_>)> {
    properties
        .iter()
        .map(|(name, prop)| {
            let value = match prop {
                Prop::Bool(b) => Value::from(*b),
                Prop::U64(n) => Value::from(*n),
                Prop::Str(s) => Value::from(s.as_str()),
                Prop::Strs(list) => {
                    Value::from(list.iter().map(String::as_str).collect::<Vec<_>>())
                }
            };
            (*name, value)
        })
        .collect()
}
