//! The runtime's readiness as the node's Ready condition reports it, published with the
//! pressure conditions.

use kubelet_cri::Runtime;

/// Why the runtime makes the node not ready, in upstream's words; empty when it is ready.
pub async fn runtime_not_ready(runtime: &dyn Runtime) -> Vec<String> {
    let status = match runtime.status().await {
        Ok(status) => status,
        Err(e) => return vec![format!("container runtime is down: {e}")],
    };
    let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
    let mut reasons = Vec::new();
    for wanted in ["RuntimeReady", "NetworkReady"] {
        match conditions.iter().find(|c| c.r#type == wanted) {
            Some(c) if c.status => {}
            Some(c) => {
                let what = if wanted == "NetworkReady" {
                    "container runtime network not ready"
                } else {
                    "container runtime not ready"
                };
                reasons.push(format!(
                    "{what}: {wanted}=false reason:{} message:{}",
                    c.reason, c.message
                ));
            }
            None => reasons.push(format!(
                "container runtime status check may not have completed yet: {wanted} missing"
            )),
        }
    }
    reasons
}
