//! Resource quantities in the canonical form the API server would print them in; the
//! formatting itself lives in kubelet-quantity.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A byte count with the largest exact binary suffix: 2147483648 is "2Gi", 1000 stays "1000".
pub fn binary(bytes: u64) -> Quantity {
    Quantity(kubelet_quantity::binary_string(bytes))
}

/// A plain count, as `resource.NewQuantity(n, DecimalSI)` prints small counts.
pub fn count(n: u64) -> Quantity {
    Quantity(n.to_string())
}

/// CPU in millicores: whole cores print as a count ("2"), the rest in millicores ("1500m").
pub fn cpu_millis(millis: u64) -> Quantity {
    Quantity(kubelet_quantity::cpu_millis_string(millis))
}
