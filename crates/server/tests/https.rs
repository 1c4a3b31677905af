//! The kubelet port over real TLS: client certificates from a test CA, anonymous auth, the
//! self-signed serving certificate, bearer tokens through a TokenReview, Webhook authorization
//! through SubjectAccessReviews, and local pod submission.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo};
use k8s_openapi::api::authorization::v1::{SubjectAccessReviewSpec, SubjectAccessReviewStatus};
use kubelet_server::{
    AccessReviewer, AuthorizationMode, ReviewError, Reviews, ServerConfig, ServerError,
    TokenReviewer, serve,
};
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
fn client_identity(ca: &Ca, user: &str, group: &str) -> reqwest::Identity {
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
        client_ca_file,
        anonymous_auth,
        ..support::server_config(dir)
    }
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

    let alice = https_client(&cfg, Some(client_identity(&ca, "alice", "system:masters")));
    assert_eq!(
        get(&alice, &cfg, "/healthz").await.unwrap(),
        (200, "ok".into())
    );

    let nobody = https_client(&cfg, None);
    assert_eq!(
        get(&nobody, &cfg, "/pods").await.unwrap(),
        (401, "Unauthorized\n".into())
    );

    let stranger = https_client(
        &cfg,
        Some(client_identity(&new_ca("other-ca"), "mallory", "evil")),
    );
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
        port: support::free_port(),
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

/// A fake API server: "good-token" is bob's, and the listed (user, subresource) pairs are
/// allowed; it counts the reviews it answers.
#[derive(Default)]
struct FakeApi {
    token_reviews: Mutex<Vec<String>>,
    access_reviews: Mutex<Vec<SubjectAccessReviewSpec>>,
    allowed: Vec<(&'static str, &'static str)>,
}

#[async_trait::async_trait]
impl TokenReviewer for FakeApi {
    async fn review_token(&self, token: &str) -> Result<TokenReviewStatus, ReviewError> {
        self.token_reviews.lock().unwrap().push(token.to_string());
        if token == "broken" {
            return Err(ReviewError("connection refused".into()));
        }
        Ok(TokenReviewStatus {
            authenticated: Some(token == "good-token"),
            user: (token == "good-token").then(|| UserInfo {
                username: Some("bob".into()),
                uid: Some("bob-uid".into()),
                groups: Some(vec!["developers".into()]),
                extra: None,
            }),
            ..Default::default()
        })
    }
}

#[async_trait::async_trait]
impl AccessReviewer for FakeApi {
    async fn review_access(
        &self,
        spec: &SubjectAccessReviewSpec,
    ) -> Result<SubjectAccessReviewStatus, ReviewError> {
        self.access_reviews.lock().unwrap().push(spec.clone());
        let user = spec.user.as_deref().unwrap_or_default();
        let subresource = spec
            .resource_attributes
            .as_ref()
            .and_then(|a| a.subresource.as_deref())
            .unwrap_or_default();
        Ok(SubjectAccessReviewStatus {
            allowed: self.allowed.contains(&(user, subresource)),
            ..Default::default()
        })
    }
}

fn with_api(cfg: ServerConfig, api: &Arc<FakeApi>) -> ServerConfig {
    ServerConfig {
        reviews: Some(Reviews {
            tokens: api.clone(),
            access: api.clone(),
        }),
        ..cfg
    }
}

async fn get_with_token(
    client: &reqwest::Client,
    cfg: &ServerConfig,
    path: &str,
    token: &str,
) -> (u16, String) {
    let response = client
        .get(format!("https://localhost:{}{path}", cfg.port))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn bearer_tokens_are_reviewed_once_per_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let api = Arc::new(FakeApi::default());
    let cfg = with_api(
        ServerConfig {
            authentication_webhook: true,
            ..config(dir.path(), None, true)
        },
        &api,
    );
    let server = serve(cfg.clone(), support::view()).await.unwrap();
    let client = https_client(&cfg, None);

    assert_eq!(
        get_with_token(&client, &cfg, "/healthz", "good-token")
            .await
            .0,
        200
    );
    assert_eq!(
        get_with_token(&client, &cfg, "/pods", "good-token").await.0,
        200
    );
    assert_eq!(*api.token_reviews.lock().unwrap(), vec!["good-token"]);

    // A rejected token is a 401 even though anonymous requests are allowed; the rejection is
    // cached too.
    for _ in 0..2 {
        assert_eq!(
            get_with_token(&client, &cfg, "/pods", "stolen").await,
            (401, "Unauthorized\n".into())
        );
    }
    assert_eq!(api.token_reviews.lock().unwrap().len(), 2);
    // A review that fails is a 401 and is asked again next time.
    for _ in 0..2 {
        assert_eq!(
            get_with_token(&client, &cfg, "/pods", "broken").await.0,
            401
        );
    }
    assert_eq!(api.token_reviews.lock().unwrap().len(), 4);
    // Without a token: anonymous.
    assert_eq!(get(&client, &cfg, "/pods").await.unwrap().0, 200);
    server.abort();
}

#[tokio::test]
async fn tokens_are_ignored_without_the_token_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let api = Arc::new(FakeApi::default());
    let cfg = with_api(config(dir.path(), None, false), &api);
    let server = serve(cfg.clone(), support::view()).await.unwrap();
    let client = https_client(&cfg, None);
    assert_eq!(
        get_with_token(&client, &cfg, "/pods", "good-token").await.0,
        401
    );
    assert!(api.token_reviews.lock().unwrap().is_empty());
    server.abort();
}

#[tokio::test]
async fn webhook_authorization_asks_the_api_server_and_caches_its_answers() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("kubelet-client-ca");
    let api = Arc::new(FakeApi {
        allowed: vec![("bob", "stats"), ("alice", "proxy")],
        ..Default::default()
    });
    let cfg = with_api(
        ServerConfig {
            authentication_webhook: true,
            authorization_mode: AuthorizationMode::Webhook,
            ..config(dir.path(), Some(&ca), false)
        },
        &api,
    );
    let server = serve(cfg.clone(), support::view()).await.unwrap();
    let client = https_client(&cfg, None);

    let (status, body) = get_with_token(&client, &cfg, "/stats/summary", "good-token").await;
    assert_ne!(status, 401, "{body}");
    assert_ne!(status, 403, "{body}");
    {
        let reviews = api.access_reviews.lock().unwrap();
        assert_eq!(reviews.len(), 1);
        let review = serde_json::to_value(&reviews[0]).unwrap();
        assert_eq!(
            review,
            serde_json::json!({
                "user": "bob", "uid": "bob-uid", "groups": ["developers", "system:authenticated"],
                "resourceAttributes": {"verb": "get", "group": "", "version": "v1",
                    "resource": "nodes", "subresource": "stats", "name": "node-a"},
            })
        );
    }

    // bob may not list pods: nodes/proxy is asked once, and the denial cached.
    for _ in 0..2 {
        assert_eq!(
            get_with_token(&client, &cfg, "/pods", "good-token").await,
            (
                403,
                "Forbidden (user=bob, verb=get, resource=nodes, subresource=proxy)".into()
            )
        );
    }
    assert_eq!(api.access_reviews.lock().unwrap().len(), 2);
    let response = client
        .post(format!(
            "https://localhost:{}/exec/default/web/app?command=ls&output=1",
            cfg.port
        ))
        .bearer_auth("good-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(
        response.text().await.unwrap(),
        "Forbidden (user=bob, verb=create, resource=nodes, subresource=proxy)"
    );

    // alice (a client certificate) has nodes/proxy, which /pods asks for.
    let alice = https_client(&cfg, Some(client_identity(&ca, "alice", "ops")));
    assert_eq!(get(&alice, &cfg, "/pods").await.unwrap().0, 200);
    assert_eq!(get(&alice, &cfg, "/pods").await.unwrap().0, 200);
    let reviews = api.access_reviews.lock().unwrap();
    let asked: Vec<_> = reviews[3..]
        .iter()
        .map(|r| {
            (
                r.user.clone().unwrap(),
                r.resource_attributes
                    .as_ref()
                    .unwrap()
                    .subresource
                    .clone()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(asked, vec![("alice".to_string(), "proxy".to_string())]);
    server.abort();
}

#[tokio::test]
async fn webhooks_need_the_api_server() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig {
        authorization_mode: AuthorizationMode::Webhook,
        ..config(dir.path(), None, false)
    };
    let error = serve(cfg, support::view()).await.unwrap_err();
    assert!(matches!(error, ServerError::NoApiClient("authorization")));
    let cfg = ServerConfig {
        authentication_webhook: true,
        ..config(dir.path(), None, false)
    };
    let error = serve(cfg, support::view()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "webhook authentication needs the API server: no client provided"
    );
}

#[tokio::test]
async fn local_pods_are_written_conflict_and_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let pods_dir = dir.path().join("local-pods");
    let cfg = ServerConfig {
        local_pods_dir: Some(pods_dir.clone()),
        cert_resolver: None,
        ..config(dir.path(), None, true)
    };
    let server = serve(cfg.clone(), support::view()).await.unwrap();
    let client = https_client(&cfg, None);
    let url = |path: &str| format!("https://localhost:{}{path}", cfg.port);
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: team\nspec:\n  containers:\n  - name: app\n    image: busybox\n";

    let response = client
        .post(url("/pods"))
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let pod: serde_json::Value = response.json().await.unwrap();
    assert_eq!(pod["metadata"]["name"], "web-node-a");
    assert_eq!(pod["metadata"]["namespace"], "team");
    assert_eq!(
        std::fs::read_to_string(pods_dir.join("team_web.yaml")).unwrap(),
        manifest
    );
    // Only the manifest is left in the directory: no temp file.
    assert_eq!(std::fs::read_dir(&pods_dir).unwrap().count(), 1);

    let again = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "team"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]}});
    let response = client.post(url("/pods")).json(&again).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 409);
    let status: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "AlreadyExists");
    assert_eq!(status["message"], "pods \"web\" already exists");

    let broken =
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: app\n";
    let response = client.post(url("/pods")).body(broken).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let status: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status["reason"], "BadRequest");
    let message = status["message"].as_str().unwrap();
    assert!(message.contains("image"), "{message}");
    assert!(!pods_dir.join("default_bad.yaml").exists());

    let response = client.delete(url("/pods/team/web")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(!pods_dir.join("team_web.yaml").exists());
    let response = client.delete(url("/pods/team/web")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let status: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status["reason"], "NotFound");

    // JSON manifests keep their format; the pod's name on the node deletes it too.
    let response = client.post(url("/pods")).json(&again).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
    assert!(pods_dir.join("team_web.json").exists());
    let response = client
        .delete(url("/pods/team/web-node-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(!pods_dir.join("team_web.json").exists());
    server.abort();
}

#[tokio::test]
async fn local_pod_submission_is_off_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), None, true);
    let server = serve(cfg.clone(), support::view()).await.unwrap();
    let client = https_client(&cfg, None);
    let response = client
        .post(format!("https://localhost:{}/pods", cfg.port))
        .body("kind: Pod")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    server.abort();
}
