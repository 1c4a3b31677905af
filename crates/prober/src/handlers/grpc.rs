//! The grpc handler (upstream pkg/probe/grpc): grpc.health.v1 Health/Check over plaintext,
//! SERVING is success.

use super::Outcome;
use super::tcp::connect;
use crate::types::ProbeResult;
use hyper_util::rt::TokioIo;
use kubelet_kuberuntime::go_duration::go_duration;
use std::time::Duration;
use tonic::Code;
use tonic::transport::{Endpoint, Uri};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Checks `service` ("" for the server as a whole) at `addr` (`host:port`) within `timeout`.
pub async fn probe(addr: &str, service: &str, timeout: Duration) -> Outcome {
    let failure = |output| Outcome {
        result: ProbeResult::Failure,
        output,
    };
    match tokio::time::timeout(timeout, check(addr, service)).await {
        Err(_) => failure(format!(
            "timeout: health rpc did not complete within {}",
            go_duration(timeout)
        )),
        Ok(Err(CheckError::Connect(err))) => failure(format!(
            "error: failed to connect service at {addr:?}: {err}"
        )),
        Ok(Err(CheckError::Rpc(status))) => match status.code() {
            Code::Unimplemented => failure(format!(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                status.message()
            )),
            Code::DeadlineExceeded => failure(format!(
                "timeout: health rpc did not complete within {}",
                go_duration(timeout)
            )),
            code => failure(format!(
                "error: health rpc probe failed: rpc error: code = {code:?} desc = {}",
                status.message()
            )),
        },
        Ok(Ok(ServingStatus::Serving)) => Outcome {
            result: ProbeResult::Success,
            output: "service healthy".to_string(),
        },
        Ok(Ok(status)) => failure(format!(
            "service unhealthy (responded with {:?})",
            status.as_str_name()
        )),
    }
}

enum CheckError {
    Connect(String),
    Rpc(tonic::Status),
}

async fn check(addr: &str, service: &str) -> Result<ServingStatus, CheckError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| CheckError::Connect(e.to_string()))?
        .user_agent(super::http::USER_AGENT_VALUE)
        .map_err(|e| CheckError::Connect(e.to_string()))?;
    let target = addr.to_string();
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let target = target.clone();
            async move { connect(&target).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|e| CheckError::Connect(error_chain(&e)))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await
        .map_err(CheckError::Rpc)?;
    // An unknown enum value is not SERVING either.
    Ok(ServingStatus::try_from(response.into_inner().status).unwrap_or(ServingStatus::Unknown))
}

/// An error with its causes, as Go's `%+v` prints wrapped errors.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
