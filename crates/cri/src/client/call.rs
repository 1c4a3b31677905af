//! One RPC: its deadline, and the mapping of its failure to [`CriError`].

use crate::CriError;
use std::future::Future;
use std::time::Duration;

/// Awaits a unary call (or the start of a stream) under `deadline`, when there is one.
///
/// Over gRPC, dropping the call on expiry resets its HTTP/2 stream, which cancels the work in the
/// runtime, as a Go client's cancelled context does; in process, the call runs on its own task and
/// only the wait for it ends.
pub(crate) async fn with_deadline<T>(
    rpc: &'static str,
    deadline: Option<Duration>,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CriError> {
    let outcome = match deadline {
        Some(timeout) => tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| CriError::Timeout { rpc, timeout })?,
        None => call.await,
    };
    outcome
        .map(tonic::Response::into_inner)
        .map_err(|status| status_error(rpc, deadline, status))
}

/// Maps a gRPC status; a runtime that reports its own deadline expiry is a timeout as well.
pub(crate) fn status_error(
    rpc: &'static str,
    deadline: Option<Duration>,
    status: tonic::Status,
) -> CriError {
    match (status.code(), deadline) {
        (tonic::Code::DeadlineExceeded, Some(timeout)) => CriError::Timeout { rpc, timeout },
        _ => CriError::from_status(rpc, status),
    }
}

/// A reply that breaks the CRI contract, such as an empty id for a created object.
pub(crate) fn invalid_reply(rpc: &'static str, what: &str) -> CriError {
    CriError::Rpc {
        rpc,
        code: tonic::Code::Internal,
        message: format!("invalid reply from the runtime: {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_deadline_is_a_timeout() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(tonic::Response::new(()))
        };
        let err = with_deadline("Version", Some(Duration::from_secs(2)), slow)
            .await
            .unwrap_err();
        assert!(
            matches!(err, CriError::Timeout { rpc: "Version", timeout } if timeout == Duration::from_secs(2)),
            "{err:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_without_deadline_may_take_long() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(tonic::Response::new(7))
        };
        assert_eq!(with_deadline("PullImage", None, slow).await.unwrap(), 7);
    }

    #[test]
    fn statuses_map_to_typed_errors() {
        let two = Some(Duration::from_secs(2));
        assert!(matches!(
            status_error("ExecSync", two, tonic::Status::deadline_exceeded("late")),
            CriError::Timeout {
                rpc: "ExecSync",
                ..
            }
        ));
        assert!(
            status_error("ContainerStatus", two, tonic::Status::not_found("gone")).is_not_found()
        );
        assert!(
            status_error(
                "GetContainerEvents",
                None,
                tonic::Status::unimplemented("no")
            )
            .is_unimplemented()
        );
    }
}
