//! The tcpSocket and grpc handlers against local servers.

use kubelet_prober::ProbeResult;
use kubelet_prober::handlers::{Outcome, grpc, tcp};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::ServingStatus;

const TIMEOUT: Duration = Duration::from_secs(1);

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn tcp_succeeds_on_an_open_port_and_fails_on_a_closed_one() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    assert_eq!(
        tcp::probe(&addr, TIMEOUT).await,
        Outcome {
            result: ProbeResult::Success,
            output: String::new()
        }
    );

    let addr = format!("127.0.0.1:{}", closed_port());
    let outcome = tcp::probe(&addr, TIMEOUT).await;
    assert_eq!(outcome.result, ProbeResult::Failure);
    assert!(
        outcome.output.starts_with(&format!("dial tcp {addr}: ")),
        "{}",
        outcome.output
    );
}

/// A gRPC server with the health service: "" and "db" serving, "cache" not.
async fn health_server() -> String {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("db", ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("cache", ServingStatus::NotServing)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        // Keeps the statuses alive as long as the server runs.
        let _reporter = reporter;
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
    });
    addr
}

#[tokio::test]
async fn grpc_serving_succeeds_and_anything_else_fails() {
    let addr = health_server().await;
    for service in ["", "db"] {
        assert_eq!(
            grpc::probe(&addr, service, TIMEOUT).await,
            Outcome {
                result: ProbeResult::Success,
                output: "service healthy".into()
            },
            "{service:?}"
        );
    }
    assert_eq!(
        grpc::probe(&addr, "cache", TIMEOUT).await,
        Outcome {
            result: ProbeResult::Failure,
            output: "service unhealthy (responded with \"NOT_SERVING\")".into()
        }
    );
    let unknown = grpc::probe(&addr, "nope", TIMEOUT).await;
    assert_eq!(unknown.result, ProbeResult::Failure);
    assert!(
        unknown
            .output
            .starts_with("error: health rpc probe failed: rpc error: code = NotFound"),
        "{}",
        unknown.output
    );
}

#[tokio::test]
async fn grpc_fails_when_nothing_listens() {
    let addr = format!("127.0.0.1:{}", closed_port());
    let outcome = grpc::probe(&addr, "", TIMEOUT).await;
    assert_eq!(outcome.result, ProbeResult::Failure);
    assert!(
        outcome
            .output
            .starts_with(&format!("error: failed to connect service at {addr:?}: ")),
        "{}",
        outcome.output
    );
}
