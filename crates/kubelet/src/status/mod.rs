//! Pod status: computed locally from the spec and the runtime (generate), kept per pod and logged
//! on every change (manager), and written to the API server (api_sync, with merge deciding what
//! the kubelet writes over the API's version).
//!
//! Wiring, in cluster mode: `status.start_api_sync(client, pods.clone())` with the PodManager
//! the sync loop gets; standalone, statuses stay local.

pub mod api_sync;
mod conditions;
pub mod generate;
mod manager;
pub mod merge;

pub use api_sync::StatusSyncError;
pub use manager::StatusManager;
