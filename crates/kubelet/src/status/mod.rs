//! Pod status: computed locally from the spec and the runtime (generate), kept per pod and logged
//! on every change (manager), and written to the API server (api_sync, with merge deciding what
//! the kubelet writes over the API's version).

pub mod api_sync;
pub mod generate;
mod manager;
pub mod merge;

pub use api_sync::StatusSyncError;
pub use manager::StatusManager;
