use std::path::PathBuf;
use std::time::Duration;

/// Why watching for a node shutdown failed; D-Bus errors name the bus address and the call.
/// (zbus errors are boxed: they are large and this error travels in every Result here.)
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    #[error("connecting to the system bus at {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: Box<zbus::Error>,
    },
    #[error("{call} on the system bus at {address}: {source}")]
    Call {
        address: String,
        call: &'static str,
        #[source]
        source: Box<zbus::Error>,
    },
    #[error("writing the logind inhibit delay override {path}: {source}")]
    WriteOverride {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "logind on the system bus at {address} kept InhibitDelayMaxSec at {current:?} after the \
         reload, less than the shutdown grace period {requested:?}"
    )]
    InhibitDelayTooShort {
        address: String,
        current: Duration,
        requested: Duration,
    },
    #[error(
        "the PrepareForShutdown signal stream from logind on the system bus at {address} ended"
    )]
    SignalStreamEnded { address: String },
}
