//! /healthz with upstream's checks: ping, log and syncloop.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

use crate::KubeletView;

const CHECKS: [&str; 3] = ["ping", "log", "syncloop"];

fn run(view: &dyn KubeletView, check: &str) -> Result<(), String> {
    match check {
        "syncloop" => view.sync_loop_healthy(),
        _ => Ok(()),
    }
}

/// All checks; `?verbose` lists each one, as upstream's healthz handler does.
pub(crate) async fn all(
    State(view): State<Arc<dyn KubeletView>>,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let mut report = String::new();
    let mut failed = false;
    for check in CHECKS {
        match run(view.as_ref(), check) {
            Ok(()) => report.push_str(&format!("[+]{check} ok\n")),
            Err(reason) => {
                tracing::warn!(check, %reason, "healthz check failed");
                failed = true;
                // Like upstream, the reason goes to the log only.
                report.push_str(&format!("[-]{check} failed: reason withheld\n"));
            }
        }
    }
    if failed {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{report}healthz check failed\n"),
        );
    }
    if query.contains_key("verbose") {
        return (StatusCode::OK, format!("{report}healthz check passed\n"));
    }
    (StatusCode::OK, "ok".into())
}

pub(crate) async fn one(
    State(view): State<Arc<dyn KubeletView>>,
    Path(check): Path<String>,
) -> (StatusCode, String) {
    if !CHECKS.contains(&check.as_str()) {
        return (StatusCode::NOT_FOUND, "404 page not found\n".into());
    }
    match run(view.as_ref(), &check) {
        Ok(()) => (StatusCode::OK, "ok".into()),
        Err(reason) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal server error: {reason}\n"),
        ),
    }
}
