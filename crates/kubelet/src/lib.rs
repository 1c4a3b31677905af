//! The kubelet: sync loop, pod workers, PLEG, status.
