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
//!
//! Beyond storage it does what a control plane does for a kubelet:
//! - CertificateSigningRequests: the /approval subresource (`kubectl certificate approve`),
//!   signers for kubelet client, kubelet serving and client certificates, and optionally the
//!   csrapprover ([`TestApiServerBuilder::auto_approve_csrs`]);
//! - serviceaccounts/NAME/token (a "default" service account in every namespace),
//!   TokenReview, and SubjectAccessReview answered as the test decides
//!   ([`TestApiServer::deny_access`], [`TestApiServer::set_access_policy`],
//!   [`TestApiServer::access_reviews`]);
//! - the kubelet proxy: pods/NAME/{log,exec,attach,portforward} and nodes/NAME/proxy/PATH,
//!   over HTTPS to the node's kubelet as kube-apiserver-kubelet-client, upgrades spliced.

mod audit;
mod auth;
mod binding;
pub mod ca;
pub mod cluster;
pub mod csr;
mod defaults;
mod discovery;
mod ephemeral;
pub mod error;
pub mod kubeconfig;
mod meta;
pub mod patch;
mod path;
mod pod_update;
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
pub use auth::{UserInfo, bootstrap_token_secret};
pub use error::ApiError;
pub use reviews::{AccessDecision, AccessReview};
pub use server::{
    DEFAULT_BOOKMARK_INTERVAL, DEFAULT_CSR_SIGNING_DURATION, ServerError, TestApiServer,
    TestApiServerBuilder,
};
pub use store::{DeleteOptions, Store, UpdateScope};
