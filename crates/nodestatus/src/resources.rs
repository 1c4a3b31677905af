//! Capacity and allocatable (upstream nodestatus.MachineInfo and
//! containerManager.GetNodeAllocatableReservation).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::info::{HardEviction, Reserved};
use crate::machine::MachineFacts;
use crate::quantity;

/// The resource name of huge pages of one size, e.g. "hugepages-2Mi".
pub fn hugepages_resource(page_bytes: u64) -> String {
    format!("hugepages-{}", kubelet_quantity::binary_string(page_bytes))
}

pub fn capacity(machine: &MachineFacts, max_pods: u32) -> BTreeMap<String, Quantity> {
    let mut capacity = BTreeMap::from([
        ("cpu".to_string(), quantity::count(machine.num_cpus)),
        ("memory".to_string(), quantity::binary(machine.memory_bytes)),
        ("pods".to_string(), quantity::count(u64::from(max_pods))),
        (
            "ephemeral-storage".to_string(),
            quantity::binary(machine.ephemeral_storage_bytes),
        ),
    ]);
    for (&page, &total) in &machine.hugepages {
        capacity.insert(hugepages_resource(page), quantity::binary(total));
    }
    capacity
}

/// Capacity minus the reservations and the hard eviction thresholds; memory also loses what
/// is pre-allocated as huge pages, as upstream. Never below zero.
pub fn allocatable(
    machine: &MachineFacts,
    max_pods: u32,
    reserved: &Reserved,
    eviction: &HardEviction,
) -> BTreeMap<String, Quantity> {
    let memory_eviction = eviction
        .memory_available
        .map_or(0, |t| t.of(machine.memory_bytes));
    let nodefs_eviction = eviction
        .nodefs_available
        .map_or(0, |t| t.of(machine.ephemeral_storage_bytes));
    let hugepages: u64 = machine.hugepages.values().sum();
    let mut allocatable = capacity(machine, max_pods);
    allocatable.insert(
        "cpu".to_string(),
        quantity::cpu_millis((machine.num_cpus * 1000).saturating_sub(reserved.cpu_millis)),
    );
    allocatable.insert(
        "memory".to_string(),
        quantity::binary(
            machine
                .memory_bytes
                .saturating_sub(reserved.memory_bytes)
                .saturating_sub(memory_eviction)
                .saturating_sub(hugepages),
        ),
    );
    allocatable.insert(
        "ephemeral-storage".to_string(),
        quantity::binary(
            machine
                .ephemeral_storage_bytes
                .saturating_sub(reserved.ephemeral_storage_bytes)
                .saturating_sub(nodefs_eviction),
        ),
    );
    allocatable
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::Threshold;

    const GI: u64 = 1 << 30;
    const MI: u64 = 1 << 20;

    fn machine() -> MachineFacts {
        MachineFacts {
            num_cpus: 4,
            memory_bytes: 8 * GI,
            hugepages: BTreeMap::from([(2 * MI, 512 * MI)]),
            ephemeral_storage_bytes: 100 * GI,
            ..MachineFacts::default()
        }
    }

    #[test]
    fn capacity_lists_the_machine() {
        let capacity = capacity(&machine(), 110);
        assert_eq!(capacity["cpu"].0, "4");
        assert_eq!(capacity["memory"].0, "8Gi");
        assert_eq!(capacity["pods"].0, "110");
        assert_eq!(capacity["ephemeral-storage"].0, "100Gi");
        assert_eq!(capacity["hugepages-2Mi"].0, "512Mi");
    }

    #[test]
    fn allocatable_subtracts_reserved_eviction_and_hugepages() {
        let reserved = Reserved {
            cpu_millis: 500,
            memory_bytes: GI,
            ephemeral_storage_bytes: 0,
        };
        let allocatable = allocatable(&machine(), 110, &reserved, &HardEviction::default());
        assert_eq!(allocatable["cpu"].0, "3500m");
        // 8Gi - 1Gi reserved - 100Mi eviction - 512Mi huge pages.
        assert_eq!(
            allocatable["memory"].0,
            quantity::binary(8 * GI - GI - 100 * MI - 512 * MI).0
        );
        assert_eq!(allocatable["ephemeral-storage"].0, "90Gi");
        assert_eq!(allocatable["pods"].0, "110");
    }

    #[test]
    fn allocatable_never_goes_negative() {
        let eviction = HardEviction {
            memory_available: Some(Threshold::Bytes(64 * GI)),
            nodefs_available: Some(Threshold::Percentage(1.0)),
        };
        let allocatable = allocatable(&machine(), 110, &Reserved::default(), &eviction);
        assert_eq!(allocatable["memory"].0, "0");
        assert_eq!(allocatable["ephemeral-storage"].0, "0");
    }
}
