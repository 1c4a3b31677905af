//! An in-memory Kubernetes API server for tests.
//!
//! It speaks the real REST paths, JSON and watch protocol for the kinds a kubelet uses, so
//! both the kubelet and the real `kubectl` can be pointed at it. See [`TestApiServer`].
//!
//! Started with [`TestApiServer::builder`]`().tls(true)` it serves HTTPS with a certificate
//! from its own CA ([`TestApiServer::ca_pem`]) and authenticates as the real server does:
//! client certificates ([`TestApiServer::issue_client_cert`]), static tokens
//! ([`TestApiServer::add_token`]), bootstrap tokens ([`TestApiServer::add_bootstrap_token`])
//! and service account tokens; [`TestApiServer::requests`] tells who made each request.

mod audit;
mod auth;
pub mod ca;
pub mod cluster;
pub mod csr;
mod defaults;
mod discovery;
pub mod error;
mod meta;
pub mod patch;
mod path;
mod proto;
mod proxy;
pub mod resources;
mod rest;
pub mod reviews;
pub mod selectors;
pub mod server;
pub mod store;
mod watch;

pub use audit::RequestRecord;
pub use auth::UserInfo;
pub use error::ApiError;
pub use reviews::{AccessDecision, AccessReview};
pub use server::{ServerError, TestApiServer, TestApiServerBuilder};
pub use store::{DeleteOptions, Store, UpdateScope};
