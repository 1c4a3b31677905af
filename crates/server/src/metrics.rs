//! /metrics, /metrics/probes, /metrics/resource, /metrics/cadvisor and /stats/summary: the text
//! and JSON come from the kubelet; this module only serves them.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::{KubeletView, MetricsPath};

/// The Prometheus text exposition format, as upstream's handlers answer.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn serve(view: Arc<dyn KubeletView>, path: MetricsPath) -> Response {
    match view.metrics(path).await {
        Some(text) => ([(header::CONTENT_TYPE, TEXT_FORMAT)], text).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub(crate) async fn kubelet(State(view): State<Arc<dyn KubeletView>>) -> Response {
    serve(view, MetricsPath::Kubelet).await
}

pub(crate) async fn probes(State(view): State<Arc<dyn KubeletView>>) -> Response {
    serve(view, MetricsPath::Probes).await
}

pub(crate) async fn resource(State(view): State<Arc<dyn KubeletView>>) -> Response {
    serve(view, MetricsPath::Resource).await
}

pub(crate) async fn cadvisor(State(view): State<Arc<dyn KubeletView>>) -> Response {
    serve(view, MetricsPath::Cadvisor).await
}

pub(crate) async fn summary(State(view): State<Arc<dyn KubeletView>>) -> Response {
    match view.stats_summary().await {
        Some(Ok(json)) => Json(json).into_response(),
        Some(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to get stats summary: {e}"),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
