//! An in-memory Kubernetes API server for tests.
//!
//! It speaks the real REST paths, JSON and watch protocol for the kinds a kubelet uses, so
//! both the kubelet and the real `kubectl` can be pointed at it. See [`TestApiServer`].

mod defaults;
mod discovery;
pub mod error;
mod meta;
pub mod patch;
mod path;
pub mod resources;
mod rest;
pub mod selectors;
pub mod server;
pub mod store;
mod watch;

pub use error::ApiError;
pub use server::{ServerError, TestApiServer};
pub use store::{DeleteOptions, Store, UpdateScope};
