//! The kubelet: pod updates from the sources flow through the sync loop to one worker per pod,
//! which converges the runtime through the runtime manager; PLEG wakes workers on runtime changes,
//! and the status manager keeps what they observe.

pub mod admission;
pub mod app;
pub mod builtin_runtime;
pub mod cluster;
pub mod cm;
pub mod csi;
pub mod devicemanager;
pub mod eviction;
pub mod housekeeping;
pub mod image_gc;
pub mod mirror_pods;
pub mod nodeshutdown;
pub mod pleg;
pub mod pluginmanager;
pub mod pod_manager;
pub mod pod_sync;
pub mod pod_workers;
pub mod podresources;
pub mod probes;
pub mod runonce;
pub mod sd_notify;
pub mod server;
pub mod startup_code;
pub mod static_pod_uids;
pub mod status;
pub mod sync_loop;
