//! The healthz endpoint (healthzBindAddress:healthzPort, /healthz only). It fails when the sync
//! loop has not turned for a while, as upstream's syncloop check does.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The sync loop counts as stuck after this long without an iteration.
const MAX_SYNC_LOOP_SILENCE: Duration = Duration::from_secs(120);

#[derive(Clone)]
pub struct Health {
    last_beat: Arc<Mutex<Instant>>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            last_beat: Arc::new(Mutex::new(Instant::now())),
        }
    }
}

impl Health {
    pub fn beat(&self) {
        *self.last_beat.lock().unwrap() = Instant::now();
    }

    pub fn check(&self) -> Result<(), String> {
        let silent = self.last_beat.lock().unwrap().elapsed();
        if silent > MAX_SYNC_LOOP_SILENCE {
            return Err(format!(
                "[-]syncloop failed: sync loop took {silent:?}, longer than {MAX_SYNC_LOOP_SILENCE:?}"
            ));
        }
        Ok(())
    }
}

pub fn router(health: Health) -> Router {
    Router::new().route(
        "/healthz",
        get(move || {
            let health = health.clone();
            async move {
                match health.check() {
                    Ok(()) => (StatusCode::OK, "ok".to_string()),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e),
                }
            }
        }),
    )
}
