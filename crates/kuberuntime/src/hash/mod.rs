//! Whether a running container still matches its spec, the question behind every "definition
//! changed" restart.
//!
//! The kubelet keeps a hash of the spec in the `io.kubernetes.container.hash` annotation. Ours
//! is upstream's since v1.31 ([`v1_31`]); upstream v1.28-v1.30 hashed the whole defaulted
//! container ([`legacy`]). A node switched from any of those kubelets must restart nothing, so
//! a container matches when its hash is any of these; when none is (another version, or a
//! defaulting difference), the fields a runtime and the annotations still show decide
//! ([`observed`]).

mod go_container_json;
mod legacy;
mod observed;
mod v1_31;

use crate::runtime_status::ContainerStatus;
use k8s_openapi::api::core::v1::Container;
use tracing::debug;

pub use v1_31::{container_hash, container_hash_hex};

/// Whether the running container `status` was started from this spec (or one that differs
/// only in what upstream would not restart it for).
pub fn spec_unchanged(status: &ContainerStatus, c: &Container) -> bool {
    let hash = status.hash();
    if hash == container_hash(c) || legacy::container_hash(c) == Some(hash) {
        return true;
    }
    // v1.28 with in-place resize wrote this too: a change of resources alone kept the container.
    if status.info.hash_without_resources.is_some()
        && status.info.hash_without_resources == legacy::container_hash_without_resources(c)
    {
        return true;
    }
    let unchanged = observed::fields_match(status, c);
    debug!(
        container = %c.name,
        container_id = %status.id,
        hash = format!("{hash:x}"),
        unchanged,
        "the container hash is not one a known kubelet computes for this spec; compared the fields the runtime shows"
    );
    unchanged
}

/// The hash every upstream version takes: fnv-1a 32 over go-spew's `%#v` rendering of JSON
/// bytes, which prints a `[]byte` as `([]uint8)[123 34 ...]`.
fn spew_fnv_hash(json: &[u8]) -> u64 {
    let items: Vec<String> = json.iter().map(u8::to_string).collect();
    u64::from(fnv1a_32(
        format!("([]uint8)[{}]", items.join(" ")).as_bytes(),
    ))
}

fn fnv1a_32(data: &[u8]) -> u32 {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    data.iter()
        .fold(OFFSET_BASIS, |h, b| (h ^ u32::from(*b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests;
