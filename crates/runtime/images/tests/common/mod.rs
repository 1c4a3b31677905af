//! Helpers shared by the integration tests.

pub mod oci;
pub mod registry;
pub mod token;
