//! Exec, attach and port-forward through the server over SPDY, with a fake backend.

mod common;

use std::time::Duration;

use common::{checksum, pattern, request, server, spdy_connect};
use k8s_cri::v1::{AttachRequest, ExecRequest, PortForwardRequest};
use runtime_streaming::RequestError;
use runtime_streaming::spdy::{Headers, SessionError, SpdyStream};

fn exec(cmd: &[&str], stdin: bool, stdout: bool, stderr: bool, tty: bool) -> ExecRequest {
    ExecRequest {
        container_id: "c1".into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        stdin,
        stdout,
        stderr,
        tty,
    }
}

fn kind(stream_type: &str) -> Headers {
    Headers::new().with("streamType", stream_type)
}

async fn read_all(stream: &SpdyStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.recv().await {
        out.extend_from_slice(&chunk);
    }
    out
}

async fn read_string(stream: &SpdyStream) -> String {
    String::from_utf8(read_all(stream).await).unwrap()
}

/// Opens the streams as client-go does: error first (already closed for writing), then the
/// standard streams.
async fn open_streams(
    conn: &runtime_streaming::spdy::Connection,
    types: &[&str],
) -> Vec<SpdyStream> {
    let mut streams = vec![conn.open(kind("error"), true).await.unwrap()];
    for t in types {
        streams.push(conn.open(kind(t), false).await.unwrap());
    }
    streams
}

#[tokio::test]
async fn exec_echo_reports_success_as_status_json() {
    let server = server().await;
    let url = server
        .get_exec(&exec(&["echo"], true, true, true, false))
        .unwrap()
        .url;
    let (conn, _incoming, head) = spdy_connect(&url, "v4.channel.k8s.io").await;
    assert!(
        head.contains("X-Stream-Protocol-Version: v4.channel.k8s.io")
            || head
                .to_ascii_lowercase()
                .contains("x-stream-protocol-version: v4.channel.k8s.io")
    );
    let s = open_streams(&conn, &["stdin", "stdout", "stderr"]).await;
    s[1].send(b"hello ").await.unwrap();
    s[1].send(b"world").await.unwrap();
    s[1].finish().await.unwrap();
    assert_eq!(read_string(&s[2]).await, "hello world");
    assert_eq!(read_string(&s[3]).await, "");
    assert_eq!(
        read_string(&s[0]).await,
        r#"{"metadata":{},"status":"Success"}"#
    );
    tokio::time::timeout(Duration::from_secs(10), conn.closed())
        .await
        .unwrap();
}

#[tokio::test]
async fn non_zero_exit_is_reported_with_its_code() {
    let server = server().await;
    let url = server
        .get_exec(&exec(&["exit", "3"], false, true, true, false))
        .unwrap()
        .url;
    let (conn, _incoming, _) = spdy_connect(&url, "v4.channel.k8s.io").await;
    let s = open_streams(&conn, &["stdout", "stderr"]).await;
    assert_eq!(read_string(&s[2]).await, "bye");
    assert_eq!(
        read_string(&s[0]).await,
        r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
    );
}

#[tokio::test]
async fn older_protocols_get_the_plain_message() {
    let server = server().await;
    let url = server
        .get_exec(&exec(&["exit", "2"], false, true, true, false))
        .unwrap()
        .url;
    // The client's order decides: the first it lists that the server speaks.
    let (conn, _incoming, head) = spdy_connect(&url, "v3.channel.k8s.io,v4.channel.k8s.io").await;
    assert!(head.contains("v3.channel.k8s.io"));
    let s = open_streams(&conn, &["stdout", "stderr"]).await;
    assert_eq!(
        read_string(&s[0]).await,
        "command terminated with non-zero exit code: error executing command [exit 2], exit code 2"
    );
}

#[tokio::test]
async fn other_failures_are_internal_errors() {
    let server = server().await;
    let url = server
        .get_exec(&exec(&["fail"], false, true, false, false))
        .unwrap()
        .url;
    let (conn, _incoming, _) = spdy_connect(&url, "v4.channel.k8s.io").await;
    let s = open_streams(&conn, &["stdout"]).await;
    assert_eq!(
        read_string(&s[0]).await,
        r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: error executing command in container: no such thing","reason":"InternalError","details":{"causes":[{"message":"error executing command in container: no such thing"}]},"code":500}"#
    );
}

#[tokio::test]
async fn tty_sessions_get_resize_events() {
    let server = server().await;
    let url = server
        .get_exec(&exec(&["tty"], true, true, false, true))
        .unwrap()
        .url;
    let (conn, _incoming, _) = spdy_connect(&url, "v4.channel.k8s.io").await;
    let s = open_streams(&conn, &["stdin", "stdout", "resize"]).await;
    // Split mid-object, as a stream may deliver it.
    s[3].send(br#"{"Width":80,"Height":24}{"Width":1"#)
        .await
        .unwrap();
    s[3].send(br#"00,"Height":30}"#).await.unwrap();
    s[1].send(b"typed").await.unwrap();
    s[1].finish().await.unwrap();
    assert_eq!(read_string(&s[2]).await, "80x24\n100x30\ntyped");
    assert_eq!(
        read_string(&s[0]).await,
        r#"{"metadata":{},"status":"Success"}"#
    );
}

#[tokio::test]
async fn megabytes_of_stdin_and_stdout_pass_flow_control() {
    let server = server().await;
    let url = server
        .get_exec(&exec(&["count"], true, true, false, false))
        .unwrap()
        .url;
    let (conn, _incoming, _) = spdy_connect(&url, "v4.channel.k8s.io").await;
    let s = open_streams(&conn, &["stdin", "stdout"]).await;
    let data: Vec<u8> = (0..6 << 20).map(pattern).collect();
    s[1].send(&data).await.unwrap();
    s[1].finish().await.unwrap();
    assert_eq!(
        read_string(&s[2]).await,
        format!("{} {}", data.len(), checksum(&data))
    );

    let url = server
        .get_exec(&exec(&["big", "5000000"], false, true, false, false))
        .unwrap()
        .url;
    let (conn, _incoming, _) = spdy_connect(&url, "v4.channel.k8s.io").await;
    let s = open_streams(&conn, &["stdout"]).await;
    let out = read_all(&s[1]).await;
    assert_eq!(out.len(), 5_000_000);
    assert!(out.iter().enumerate().all(|(i, &b)| b == pattern(i)));
    assert_eq!(
        read_string(&s[0]).await,
        r#"{"metadata":{},"status":"Success"}"#
    );
}

#[tokio::test]
async fn attach_echoes() {
    let server = server().await;
    let req = AttachRequest {
        container_id: "c1".into(),
        stdin: true,
        stdout: true,
        ..Default::default()
    };
    let url = server.get_attach(&req).unwrap().url;
    let (conn, _incoming, _) = spdy_connect(&url, "v4.channel.k8s.io").await;
    let s = open_streams(&conn, &["stdin", "stdout"]).await;
    s[1].send(b"attached").await.unwrap();
    s[1].finish().await.unwrap();
    assert_eq!(read_string(&s[2]).await, "attached");
    assert_eq!(
        read_string(&s[0]).await,
        r#"{"metadata":{},"status":"Success"}"#
    );
}

fn pf_headers(stream_type: &str, port: &str, request_id: &str) -> Headers {
    Headers::new()
        .with("streamType", stream_type)
        .with("port", port)
        .with("requestID", request_id)
}

#[tokio::test]
async fn port_forward_carries_ten_mebibytes_each_way() {
    let server = server().await;
    let req = PortForwardRequest {
        pod_sandbox_id: "sb".into(),
        port: vec![1],
    };
    let url = server.get_port_forward(&req).unwrap().url;
    let (conn, _incoming, _) = spdy_connect(&url, "portforward.k8s.io").await;
    let error = conn
        .open(pf_headers("error", "1", "0"), true)
        .await
        .unwrap();
    let data = conn
        .open(pf_headers("data", "1", "0"), false)
        .await
        .unwrap();
    let payload: Vec<u8> = (0..10 << 20).map(pattern).collect();
    let (sent, received) = tokio::join!(
        async {
            data.send(&payload).await.unwrap();
            data.finish().await.unwrap();
        },
        read_all(&data)
    );
    let () = sent;
    assert_eq!(received.len(), payload.len());
    assert!(received == payload, "echoed bytes differ");
    assert_eq!(read_string(&error).await, "");

    // A second connection on the same session gets its own pair.
    let error = conn
        .open(pf_headers("error", "1", "1"), true)
        .await
        .unwrap();
    let data = conn
        .open(pf_headers("data", "1", "1"), false)
        .await
        .unwrap();
    data.send(b"again").await.unwrap();
    data.finish().await.unwrap();
    assert_eq!(read_string(&data).await, "again");
    assert_eq!(read_string(&error).await, "");
}

#[tokio::test]
async fn port_forward_errors_go_to_the_error_stream() {
    let server = server().await;
    let req = PortForwardRequest {
        pod_sandbox_id: "sb".into(),
        port: vec![2],
    };
    let url = server.get_port_forward(&req).unwrap().url;
    let (conn, _incoming, _) = spdy_connect(&url, "portforward.k8s.io").await;
    let error = conn
        .open(pf_headers("error", "2", "7"), true)
        .await
        .unwrap();
    let data = conn
        .open(pf_headers("data", "2", "7"), false)
        .await
        .unwrap();
    assert_eq!(
        read_string(&error).await,
        "error forwarding port 2 to pod sb, uid : connection refused"
    );
    drop(data);
    // A stream without a port is refused outright.
    let refused = conn
        .open(
            Headers::new()
                .with("streamType", "data")
                .with("requestID", "9"),
            false,
        )
        .await;
    assert!(
        matches!(refused, Err(SessionError::Refused(_, _))),
        "{:?}",
        refused.err()
    );
}

#[tokio::test]
async fn negotiation_failures_are_answered_as_upstream() {
    let server = server().await;
    let url = server
        .get_exec(&exec(&["echo"], true, true, false, false))
        .unwrap()
        .url;
    let reply = request(
        &url,
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", "v9.channel.k8s.io"),
        ],
    )
    .await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.header("X-Accepted-Stream-Protocol-Versions"),
        vec![
            "v4.channel.k8s.io",
            "v3.channel.k8s.io",
            "v2.channel.k8s.io",
            "channel.k8s.io"
        ]
    );
    assert!(reply.body().await.contains(
        "unable to upgrade: unable to negotiate protocol: client supports [v9.channel.k8s.io], server accepts [v4.channel.k8s.io v3.channel.k8s.io v2.channel.k8s.io channel.k8s.io]"
    ));
    // The token was used by that request.
    let reply = request(
        &url,
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
        ],
    )
    .await;
    assert_eq!(reply.status, 404);

    let url = server
        .get_exec(&exec(&["echo"], true, true, false, false))
        .unwrap()
        .url;
    let reply = request(&url, &[("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")]).await;
    assert_eq!(reply.status, 400);
    assert!(
        reply
            .body()
            .await
            .contains("unable to upgrade: X-Stream-Protocol-Version is required")
    );

    let (address, _) = common::split_url(&url);
    let reply = request(&format!("http://{address}/exec/nosuchtoken"), &[]).await;
    assert_eq!(reply.status, 404);
    let reply = request(&format!("http://{address}/other/x"), &[]).await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn clients_that_never_open_their_streams_are_dropped() {
    let server = server().await;
    let url = server
        .get_exec(&exec(&["echo"], true, true, false, false))
        .unwrap()
        .url;
    let (conn, _incoming, _) = spdy_connect(&url, "v4.channel.k8s.io").await;
    let _error = conn.open(kind("error"), true).await.unwrap();
    // The test server waits 2 s for the other streams, then closes (after its linger).
    tokio::time::timeout(Duration::from_secs(15), conn.closed())
        .await
        .unwrap();
}

#[tokio::test]
async fn requests_are_validated_as_upstream() {
    let server = server().await;
    let invalid = |msg| Err(RequestError::InvalidArgument(msg));
    let mut req = exec(&["echo"], true, true, true, false);
    req.container_id.clear();
    assert_eq!(
        server.get_exec(&req).map(|r| r.url),
        invalid("missing required container_id")
    );
    assert_eq!(
        server
            .get_exec(&exec(&["x"], true, true, true, true))
            .map(|r| r.url),
        invalid("tty and stderr cannot both be true")
    );
    assert_eq!(
        server
            .get_exec(&exec(&["x"], false, false, false, false))
            .map(|r| r.url),
        invalid("one of stdin, stdout, or stderr must be set")
    );
    let attach = AttachRequest {
        container_id: "c".into(),
        ..Default::default()
    };
    assert_eq!(
        server.get_attach(&attach).map(|r| r.url),
        invalid("one of stdin, stdout, and stderr must be set")
    );
    let pf = PortForwardRequest::default();
    assert_eq!(
        server.get_port_forward(&pf).map(|r| r.url),
        invalid("missing required pod_sandbox_id")
    );
    let url = server
        .get_exec(&exec(&["x"], true, false, false, false))
        .unwrap()
        .url;
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("/exec/"),
        "{url}"
    );

    let unstarted = runtime_streaming::Server::new(
        Default::default(),
        std::sync::Arc::new(common::FakeBackend),
    );
    assert_eq!(
        unstarted
            .get_exec(&exec(&["x"], true, false, false, false))
            .map(|r| r.url),
        Err(RequestError::NotStarted)
    );
}
