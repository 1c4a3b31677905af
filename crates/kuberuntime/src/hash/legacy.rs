//! The container hash of upstream v1.28 to v1.30: the JSON of the whole defaulted container
//! (`HashContainer`), and v1.28's `HashContainerWithoutResources`, the same with the resources
//! emptied, which it wrote when in-place resize was on.

use super::go_container_json::container_json;
use super::spew_fnv_hash;
use k8s_openapi::api::core::v1::Container;

/// `HashContainer` of v1.28-v1.30; `None` when the container has no JSON object form.
pub(super) fn container_hash(c: &Container) -> Option<u64> {
    container_json(c).map(|json| spew_fnv_hash(json.as_bytes()))
}

/// `HashContainerWithoutResources` of v1.28.
pub(super) fn container_hash_without_resources(c: &Container) -> Option<u64> {
    let without = Container {
        resources: None,
        ..c.clone()
    };
    container_hash(&without)
}
