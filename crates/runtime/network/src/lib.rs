//! Pod networking for the built-in runtime: namespaces pinned without a pause process, and CNI
//! (conflist loading, chained plugins with prevResult, capability args, cached results for DEL).

mod cni;
mod error;
mod ns;

pub use cni::{Attachment, Cni, NetworkResult};
pub use error::NetworkError;
pub use ns::{PinRequest, PinnedNamespaces, pin, unpin};
