//! `Reviews::from_client`: the TokenReview and SubjectAccessReview the kubelet posts to the API
//! server, against a stand-in that records them.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReviewSpec};
use kubelet_server::Reviews;
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<(String, Value)>>>;

async fn fake_api() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            post(
                |State(seen): State<Seen>, Json(body): Json<Value>| async move {
                    let good = body["spec"]["token"] == "good-token";
                    seen.lock()
                        .unwrap()
                        .push(("tokenreviews".into(), body.clone()));
                    Json(json!({
                        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                        "metadata": {}, "spec": body["spec"],
                        "status": {"authenticated": good,
                            "user": {"username": "bob", "uid": "1", "groups": ["dev"]}},
                    }))
                },
            ),
        )
        .route(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            post(
                |State(seen): State<Seen>, Json(body): Json<Value>| async move {
                    seen.lock()
                        .unwrap()
                        .push(("subjectaccessreviews".into(), body.clone()));
                    let allowed = body["spec"]["resourceAttributes"]["subresource"] == "stats";
                    Json(json!({
                        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                        "metadata": {}, "spec": body["spec"],
                        "status": {"allowed": allowed},
                    }))
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn reviews_are_posted_to_the_api_server() {
    let (url, seen) = fake_api().await;
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let reviews = Reviews::from_client(client);

    let status = reviews.tokens.review_token("good-token").await.unwrap();
    assert_eq!(status.authenticated, Some(true));
    assert_eq!(status.user.unwrap().username.as_deref(), Some("bob"));
    let status = reviews.tokens.review_token("bad").await.unwrap();
    assert_eq!(status.authenticated, Some(false));

    let spec = |subresource: &str| SubjectAccessReviewSpec {
        user: Some("bob".into()),
        resource_attributes: Some(ResourceAttributes {
            verb: Some("get".into()),
            resource: Some("nodes".into()),
            subresource: Some(subresource.into()),
            name: Some("node-a".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(
        reviews
            .access
            .review_access(&spec("stats"))
            .await
            .unwrap()
            .allowed
    );
    assert!(
        !reviews
            .access
            .review_access(&spec("proxy"))
            .await
            .unwrap()
            .allowed
    );

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0].0, "tokenreviews");
    assert_eq!(seen[0].1["kind"], "TokenReview");
    assert_eq!(seen[0].1["spec"], json!({"token": "good-token"}));
    assert_eq!(seen[2].0, "subjectaccessreviews");
    assert_eq!(seen[2].1["apiVersion"], "authorization.k8s.io/v1");
    assert_eq!(seen[2].1["spec"]["resourceAttributes"]["name"], "node-a");
    assert_eq!(seen[2].1["spec"]["user"], "bob");
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_api_server_is_a_review_error_after_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let reviews = Reviews::from_client(client);
    let started = tokio::time::Instant::now();
    let error = reviews.tokens.review_token("t").await.unwrap_err();
    assert!(error.to_string().starts_with("TokenReview: "), "{error}");
    // Four waits between five attempts: 0.5 + 0.75 + 1.125 + 1.6875 s.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(4062),
        "{:?}",
        started.elapsed()
    );
}
