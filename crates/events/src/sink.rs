//! Writing one correlated event (client-go recordToSink and recordEvent): create it, or patch
//! the count of the one already there; retry only when the server could not be reached.

use crate::correlator::{Correlated, Correlator};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::time::Duration;

/// How the background writer retries (client-go maxTriesPerEvent and defaultSleepDuration).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_tries: u32,
    pub sleep: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_tries: 12,
            sleep: Duration::from_secs(10),
        }
    }
}

enum Outcome {
    Done,
    Retry(kube::Error),
}

/// Writes `c`, retrying while the server is unreachable; gives up with a log line after
/// `policy.max_tries`. Never returns an error: events are best effort.
pub async fn record(
    client: &kube::Client,
    correlator: &mut Correlator,
    c: Correlated,
    policy: &RetryPolicy,
) {
    let mut tries = 0;
    loop {
        let error = match write_once(client, correlator, &c).await {
            Outcome::Done => return,
            Outcome::Retry(e) => e,
        };
        tries += 1;
        if tries >= policy.max_tries {
            tracing::error!(
                reason = c.event.reason.as_deref().unwrap_or(""),
                object = c.event.involved_object.name.as_deref().unwrap_or(""),
                error = %error,
                "unable to write event (retry limit exceeded)"
            );
            return;
        }
        tracing::warn!(error = %error, "unable to write event (may retry after sleeping)");
        // The first sleep is random so that clients do not retry in step after an outage.
        let sleep = if tries == 1 {
            policy.sleep.mul_f64(fastrand::f64())
        } else {
            policy.sleep
        };
        tokio::time::sleep(sleep).await;
    }
}

async fn write_once(client: &kube::Client, correlator: &mut Correlator, c: &Correlated) -> Outcome {
    let namespace = c.event.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let name = c.event.metadata.name.as_deref().unwrap_or("");
    let mut result = None;
    if let Some(patch) = &c.patch {
        let patched = api
            .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await;
        // The event may have been deleted (or expired) since: create it again.
        if !matches!(&patched, Err(kube::Error::Api(s)) if s.is_not_found()) {
            result = Some(patched);
        }
    }
    let result = match result {
        Some(r) => r,
        None => {
            let mut event = c.event.clone();
            event.metadata.resource_version = None;
            api.create(&PostParams::default(), &event).await
        }
    };
    match result {
        Ok(written) => {
            correlator.update_state(&written);
            Outcome::Done
        }
        Err(kube::Error::Api(s)) => {
            // The server answered: the request itself is wrong, so retrying cannot help.
            let terminating = s
                .details
                .as_ref()
                .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"));
            if s.is_already_exists() || terminating {
                tracing::debug!(event = name, reason = %s.reason, "event not written");
            } else {
                tracing::error!(event = name, error = %s, "server rejected event (will not retry)");
            }
            Outcome::Done
        }
        Err(e @ (kube::Error::BuildRequest(_) | kube::Error::SerdeError(_))) => {
            tracing::error!(event = name, error = %e, "unable to construct event (will not retry)");
            Outcome::Done
        }
        Err(e) => Outcome::Retry(e),
    }
}
