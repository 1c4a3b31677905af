//! Teardown that runs even when a test panics.

use crate::TestRuntime;

/// Removes a pod (its sandboxes and containers, then its cgroups) when dropped.
///
/// Drop cannot await, so the cleanup runs on its own thread with its own Tokio runtime; that
/// works from inside a test's runtime too. A failed cleanup fails the test, unless the test is
/// already panicking, in which case it is only printed.
#[must_use = "the pod is removed when the guard is dropped"]
pub struct PodGuard {
    runtime: TestRuntime,
    pod_uid: String,
}

impl PodGuard {
    pub(crate) fn new(runtime: TestRuntime, pod_uid: String) -> Self {
        PodGuard { runtime, pod_uid }
    }

    fn cleanup(&self) -> Result<(), String> {
        let runtime = self.runtime.clone();
        let pod_uid = self.pod_uid.clone();
        std::thread::spawn(move || {
            let executor = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| format!("cannot start a Tokio runtime: {err}"))?;
            executor
                .block_on(runtime.remove_pod(&pod_uid))
                .map_err(|err| format!("removing the sandboxes failed: {err}"))?;
            runtime
                .remove_pod_cgroups(&pod_uid)
                .map_err(|err| format!("removing the cgroups failed: {err}"))
        })
        .join()
        .unwrap_or_else(|_| Err("the cleanup thread panicked".to_string()))
    }
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        if let Err(err) = self.cleanup() {
            let message = format!("cleanup of test pod {}: {err}", self.pod_uid);
            if std::thread::panicking() {
                eprintln!("{message}");
            } else {
                panic!("{message}");
            }
        }
    }
}
