//! The reasons and messages upstream's shutdown manager writes into pod statuses and admission
//! results, so the kubelet reports a node shutdown exactly as the Go kubelet does.

/// The terminated pod's status reason (the pod ends Failed with it).
pub const NODE_SHUTDOWN_REASON: &str = "Terminated";
/// The terminated pod's status message.
pub const NODE_SHUTDOWN_MESSAGE: &str = "Pod was terminated in response to imminent node shutdown.";
/// Admission rejects new pods with this reason while the node shuts down.
pub const NODE_SHUTDOWN_NOT_ADMITTED_REASON: &str = "NodeShutdown";
/// Admission's message for pods rejected while the node shuts down.
pub const NODE_SHUTDOWN_NOT_ADMITTED_MESSAGE: &str =
    "Pod was rejected as the node is shutting down.";
/// The condition type added to each pod stopped for the shutdown (PodDisruptionConditions, GA).
pub const DISRUPTION_TARGET_CONDITION: &str = "DisruptionTarget";
/// The reason of that condition; its message is [`NODE_SHUTDOWN_MESSAGE`].
pub const DISRUPTION_TARGET_REASON: &str = "TerminationByKubelet";
