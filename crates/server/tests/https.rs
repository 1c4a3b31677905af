//! The kubelet port over real TLS: client certificates from a test CA, anonymous auth,
//! the self-signed serving certificate and the Webhook refusal.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use kubelet_server::{AuthorizationMode, ServerConfig, ServerError, serve};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn new_ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let pem = params.self_signed(&key).unwrap().pem();
    Ca {
        issuer: Issuer::new(params, key),
        pem,
    }
}

/// A client identity (cert + key PEM) signed by `ca`.
fn client(ca: &Ca, user: &str, group: &str) -> reqwest::Identity {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, user);
    params
        .distinguished_name
        .push(DnType::OrganizationName, group);
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    reqwest::Identity::from_pem(format!("{}{}", cert.pem(), key.serialize_pem()).as_bytes())
        .unwrap()
}

fn config(dir: &Path, client_ca: Option<&Ca>, anonymous_auth: bool) -> ServerConfig {
    let client_ca_file = client_ca.map(|ca| {
        let path = dir.join("ca.crt");
        std::fs::write(&path, &ca.pem).unwrap();
        path
    });
    ServerConfig {
        address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: free_port(),
        tls_cert_file: None,
        tls_private_key_file: None,
        cert_dir: dir.join("pki"),
        node_ips: vec![],
        client_ca_file,
        anonymous_auth,
        authorization_mode: AuthorizationMode::AlwaysAllow,
        tls_min_version: None,
        tls_cipher_suites: vec![],
        log_dir: dir.to_path_buf(),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A client that trusts the generated serving certificate, optionally with a client identity.
fn https_client(cfg: &ServerConfig, identity: Option<reqwest::Identity>) -> reqwest::Client {
    let serving = std::fs::read(cfg.cert_dir.join("kubelet.crt")).unwrap();
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&serving).unwrap());
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build().unwrap()
}

async fn get(
    client: &reqwest::Client,
    cfg: &ServerConfig,
    path: &str,
) -> reqwest::Result<(u16, String)> {
    let response = client
        .get(format!("https://localhost:{}{path}", cfg.port))
        .send()
        .await?;
    Ok((response.status().as_u16(), response.text().await?))
}

#[tokio::test]
async fn client_certificates_authenticate_and_anonymous_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("kubelet-client-ca");
    let cfg = config(dir.path(), Some(&ca), false);
    let server = serve(cfg.clone(), support::view()).await.unwrap();

    let alice = https_client(&cfg, Some(client(&ca, "alice", "system:masters")));
    assert_eq!(
        get(&alice, &cfg, "/healthz").await.unwrap(),
        (200, "ok".into())
    );

    let nobody = https_client(&cfg, None);
    assert_eq!(
        get(&nobody, &cfg, "/pods").await.unwrap(),
        (401, "Unauthorized\n".into())
    );

    let stranger = https_client(&cfg, Some(client(&new_ca("other-ca"), "mallory", "evil")));
    match get(&stranger, &cfg, "/pods").await {
        Ok((status, _)) => assert_eq!(status, 401),
        Err(error) => assert!(error.is_connect() || error.is_request(), "{error}"),
    }
    server.abort();
}

#[tokio::test]
async fn anonymous_requests_pass_when_enabled_and_the_certificate_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), None, true);
    let server = serve(cfg.clone(), support::view()).await.unwrap();
    let anonymous = https_client(&cfg, None);
    let (status, body) = get(&anonymous, &cfg, "/pods").await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"PodList\""), "{body}");
    server.abort();

    let generated = std::fs::read(cfg.cert_dir.join("kubelet.crt")).unwrap();
    let again = ServerConfig {
        port: free_port(),
        ..cfg.clone()
    };
    let server = serve(again.clone(), support::view()).await.unwrap();
    assert_eq!(
        std::fs::read(cfg.cert_dir.join("kubelet.crt")).unwrap(),
        generated
    );
    assert_eq!(get(&anonymous, &again, "/healthz").await.unwrap().0, 200);
    server.abort();
}

#[tokio::test]
async fn webhook_authorization_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig {
        authorization_mode: AuthorizationMode::Webhook,
        ..config(dir.path(), None, false)
    };
    let error = serve(cfg, support::view()).await.unwrap_err();
    assert!(matches!(error, ServerError::WebhookAuthorization));
    assert_eq!(
        error.to_string(),
        "authorization mode Webhook needs the API server, not supported yet"
    );
}
