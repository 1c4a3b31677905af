//! Pod status: computed locally from the spec and the runtime (generate), kept per pod and logged
//! on every change (manager).

pub mod generate;
mod manager;

pub use manager::StatusManager;
