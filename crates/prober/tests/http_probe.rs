//! The httpGet handler against a local server.

mod support;

use k8s_openapi::api::core::v1::{Container, ContainerPort, HTTPGetAction, HTTPHeader, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubelet_cri::fake::FakeRuntime;
use kubelet_prober::ProbeResult;
use kubelet_prober::handlers::http::{HttpProber, build_request};
use kubelet_prober::handlers::{Handlers, MAX_OUTPUT_BYTES, Outcome, Target};
use std::sync::Arc;
use std::time::Duration;
use support::{answer, http_server};
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_secs(1);

fn action(port: u16, path: &str) -> HTTPGetAction {
    HTTPGetAction {
        port: IntOrString::Int(i32::from(port)),
        path: Some(path.to_string()),
        ..Default::default()
    }
}

async fn get(port: u16, path: &str) -> Outcome {
    let request = build_request(
        &action(port, path),
        &Container::default(),
        Some("127.0.0.1"),
    )
    .expect("request builds");
    HttpProber::default().probe(&request, TIMEOUT).await
}

#[tokio::test]
async fn statuses_200_to_399_succeed() {
    let port = http_server().await;
    for code in [200, 204, 299] {
        let outcome = get(port, &format!("/status/{code}")).await;
        assert_eq!(outcome.result, ProbeResult::Success, "{code}");
    }
    for code in [400, 404, 500, 503] {
        let outcome = get(port, &format!("/status/{code}")).await;
        assert_eq!(
            outcome,
            Outcome {
                result: ProbeResult::Failure,
                output: format!("HTTP probe failed with statuscode: {code}"),
            }
        );
    }
    let outcome = get(port, "/status/304").await;
    assert_eq!(
        outcome.result,
        ProbeResult::Warning,
        "a 3xx answer is not followed"
    );
}

#[tokio::test]
async fn redirects_on_the_same_host_are_followed_ten_requests_deep() {
    let port = http_server().await;
    let outcome = get(port, "/redirect/9").await;
    assert_eq!(
        outcome,
        Outcome {
            result: ProbeResult::Success,
            output: "arrived".into()
        },
        "nine redirects: ten requests"
    );
    let outcome = get(port, "/redirect/10").await;
    assert_eq!(outcome.result, ProbeResult::Failure);
    assert_eq!(
        outcome.output,
        format!("Get \"http://127.0.0.1:{port}/redirect/0\": stopped after 10 redirects")
    );
}

#[tokio::test]
async fn a_redirect_to_another_host_is_a_warning_with_the_body_cut_at_10_kib() {
    let port = http_server().await;
    let outcome = get(port, "/elsewhere").await;
    assert_eq!(outcome.result, ProbeResult::Warning);
    let prefix = "Probe terminated redirects, Response body: ";
    assert!(outcome.output.starts_with(prefix));
    assert_eq!(outcome.output.len(), prefix.len() + MAX_OUTPUT_BYTES);

    let outcome = get(port, "/big").await;
    assert_eq!(outcome.result, ProbeResult::Success);
    assert_eq!(
        outcome.output.len(),
        MAX_OUTPUT_BYTES,
        "the body read stops at 10 KiB"
    );
}

#[tokio::test]
async fn sends_upstreams_default_and_the_probes_headers() {
    let port = http_server().await;
    let head = get(port, "/headers?x=1").await.output;
    assert!(head.starts_with("GET /headers?x=1 HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("User-Agent: kube-probe/1.32\r\n"), "{head}");
    assert!(head.contains("Accept: */*\r\n"), "{head}");
    assert!(
        head.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
        "{head}"
    );

    let mut custom = action(port, "headers");
    custom.http_headers = Some(vec![
        HTTPHeader {
            name: "X-Probe".into(),
            value: "one".into(),
        },
        HTTPHeader {
            name: "user-agent".into(),
            value: "mine".into(),
        },
        HTTPHeader {
            name: "Accept".into(),
            value: String::new(),
        },
        HTTPHeader {
            name: "Host".into(),
            value: "app.example".into(),
        },
    ]);
    let request = build_request(&custom, &Container::default(), Some("127.0.0.1")).unwrap();
    let head = HttpProber::default().probe(&request, TIMEOUT).await.output;
    assert!(
        head.starts_with("GET /headers HTTP/1.1\r\n"),
        "a relative path gets its slash"
    );
    assert!(head.contains("X-Probe: one\r\n"), "{head}");
    assert!(
        head.contains("User-Agent: mine\r\n") && !head.contains("kube-probe"),
        "{head}"
    );
    assert!(
        !head.contains("Accept:"),
        "an empty Accept removes it: {head}"
    );
    assert!(head.contains("Host: app.example\r\n"), "{head}");
}

#[tokio::test]
async fn a_slow_or_absent_server_fails_the_probe() {
    let port = http_server().await;
    let outcome = get(port, "/slow").await;
    assert_eq!(outcome.result, ProbeResult::Failure);
    assert!(
        outcome.output.contains("Client.Timeout exceeded"),
        "{}",
        outcome.output
    );

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let outcome = get(closed, "/").await;
    assert_eq!(outcome.result, ProbeResult::Failure);
    assert!(
        outcome.output.starts_with(&format!(
            "Get \"http://127.0.0.1:{closed}/\": dial tcp 127.0.0.1:{closed}: "
        )),
        "{}",
        outcome.output
    );
}

#[tokio::test]
async fn a_named_port_and_the_pod_ip_address_the_container() {
    let port = http_server().await;
    let container = Container {
        name: "app".into(),
        ports: Some(vec![ContainerPort {
            name: Some("web".into()),
            container_port: i32::from(port),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let probe = Probe {
        http_get: Some(HTTPGetAction {
            port: IntOrString::String("web".into()),
            path: Some("/status/200".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let handlers = Handlers::new(Arc::new(FakeRuntime::new()));
    let target = Target {
        container: &container,
        container_id: "c1",
        pod_ip: Some("127.0.0.1"),
    };
    let outcome = handlers
        .run(&probe, target, TIMEOUT)
        .await
        .expect("probe runs");
    assert_eq!(outcome.result, ProbeResult::Success);

    let mut unknown = probe.clone();
    unknown.http_get.as_mut().unwrap().port = IntOrString::String("grpc".into());
    let err = handlers.run(&unknown, target, TIMEOUT).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "port grpc not found and it is not a number"
    );
}

/// An HTTPS server whose self-signed certificate names another host ("example.invalid").
async fn https_server() -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert = CertificateDer::from_pem_slice(include_bytes!("support/selfsigned.crt")).unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("support/selfsigned.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    answer(tls, port).await;
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn https_probes_do_not_check_the_certificate() {
    let port = https_server().await;
    let mut https = action(port, "/status/200");
    https.scheme = Some("HTTPS".into());
    let request = build_request(&https, &Container::default(), Some("127.0.0.1")).unwrap();
    assert_eq!(
        request.url.as_str(),
        format!("https://127.0.0.1:{port}/status/200")
    );
    let outcome = HttpProber::default().probe(&request, TIMEOUT).await;
    assert_eq!(
        outcome,
        Outcome {
            result: ProbeResult::Success,
            output: "status 200".into()
        }
    );
}
