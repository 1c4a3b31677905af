//! TokenRequest, TokenReview and SubjectAccessReview with kube-rs over TLS.

use std::path::Path;

use k8s_openapi::api::authentication::v1::{
    TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec,
};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kubelet_test_apiserver::{AccessDecision, TestApiServer};

async fn client(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

async fn request_token(
    api: &Api<ServiceAccount>,
    name: &str,
    request: TokenRequest,
) -> Result<TokenRequest, kube::Error> {
    api.create_subresource("token", name, &PostParams::default(), &request)
        .await
}

fn token_request(seconds: Option<i64>, audiences: &[&str]) -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            expiration_seconds: seconds,
            bound_object_ref: None,
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn service_account_tokens_authenticate_and_are_reviewed() {
    let server = TestApiServer::builder().tls(true).start();
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin");
    server.kubeconfig(&admin).unwrap();
    let admin = client(&admin).await;

    // Every namespace gets a default service account, new ones too.
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some("apps".into());
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "apps");
    let sa = sas.get("default").await.unwrap();

    let before = jiff::Timestamp::now();
    let issued: TokenRequest = request_token(&sas, "default", token_request(None, &[]))
        .await
        .unwrap();
    let spec = &issued.spec;
    assert_eq!(spec.expiration_seconds, Some(3600));
    assert_eq!(
        spec.audiences,
        ["https://kubernetes.default.svc.cluster.local"]
    );
    let status = issued.status.unwrap();
    let expires = jiff::Timestamp::from_second(status.expiration_timestamp.0.as_second()).unwrap();
    let lifetime = expires.duration_since(before).as_secs();
    assert!((3599..=3601).contains(&lifetime), "{lifetime}");

    // The token authenticates API requests as the service account.
    let token_config = dir.path().join("sa");
    server
        .kubeconfig_with_token(&token_config, &status.token)
        .unwrap();
    let as_sa: Api<ServiceAccount> = Api::namespaced(client(&token_config).await, "apps");
    as_sa.list(&Default::default()).await.unwrap();
    let user = server.requests().pop().unwrap().user.unwrap();
    assert_eq!(user.username, "system:serviceaccount:apps:default");
    assert_eq!(user.uid, sa.metadata.uid.unwrap());
    assert_eq!(
        user.groups,
        [
            "system:serviceaccounts",
            "system:serviceaccounts:apps",
            "system:authenticated"
        ]
    );

    // TokenReview knows it, for the audiences it was issued for.
    let reviews: Api<TokenReview> = Api::all(admin.clone());
    let review = |token: &str, audiences: &[&str]| TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_string()),
            audiences: Some(audiences.iter().map(|a| a.to_string()).collect()),
        },
        ..Default::default()
    };
    let answer = reviews
        .create(&PostParams::default(), &review(&status.token, &[]))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(answer.authenticated, Some(true));
    assert_eq!(
        answer.user.unwrap().username.as_deref(),
        Some("system:serviceaccount:apps:default")
    );
    let answer = reviews
        .create(&PostParams::default(), &review(&status.token, &["vault"]))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_ne!(answer.authenticated, Some(true));

    // A token for another audience does not authenticate to the API server, but reviews
    // for that audience.
    let vault: TokenRequest = request_token(&sas, "default", token_request(Some(600), &["vault"]))
        .await
        .unwrap();
    let vault_token = vault.status.unwrap().token;
    let answer = reviews
        .create(&PostParams::default(), &review(&vault_token, &["vault"]))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(answer.authenticated, Some(true));
    assert_eq!(answer.audiences.unwrap(), ["vault"]);
    server
        .kubeconfig_with_token(&token_config, &vault_token)
        .unwrap();
    let refused = Api::<ServiceAccount>::namespaced(client(&token_config).await, "apps")
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(matches!(refused, kube::Error::Api(s) if s.code == 401));

    // Invalid requests: too short, and a service account that does not exist.
    let err = request_token(&sas, "default", token_request(Some(60), &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 422));
    let err = request_token(&sas, "builder", token_request(None, &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 404));

    // Deleting the service account invalidates its tokens.
    sas.delete("default", &Default::default()).await.unwrap();
    let answer = reviews
        .create(&PostParams::default(), &review(&status.token, &[]))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_ne!(answer.authenticated, Some(true));
}

fn access(user: &str, verb: &str, resource: &str, subresource: &str) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(vec!["system:authenticated".into()]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                subresource: Some(subresource.into()),
                name: Some("n1".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn subject_access_reviews_answer_as_the_test_decides() {
    let server = TestApiServer::start();
    let client = kube::Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap();
    let sars: Api<SubjectAccessReview> = Api::all(client.clone());
    let ask = |user: &str, verb: &str, sub: &str| {
        let sars = sars.clone();
        let review = access(user, verb, "nodes", sub);
        async move {
            sars.create(&PostParams::default(), &review)
                .await
                .unwrap()
                .status
                .unwrap()
        }
    };
    assert!(ask("alice", "get", "proxy").await.allowed);

    server.deny_access("alice", "*", "nodes", "proxy");
    let denied = ask("alice", "get", "proxy").await;
    assert!(!denied.allowed && denied.denied == Some(true));
    assert!(ask("alice", "get", "stats").await.allowed);

    server.set_access_policy(|review| {
        if review.subresource == "metrics" {
            AccessDecision::NoOpinion("no rule".into())
        } else {
            AccessDecision::Allow
        }
    });
    let no_opinion = ask("bob", "get", "metrics").await;
    assert!(!no_opinion.allowed && no_opinion.denied.is_none());

    let received = server.access_reviews();
    assert_eq!(received.len(), 4);
    let first = &received[0];
    assert_eq!(
        (
            first.user.as_str(),
            first.verb.as_str(),
            first.resource.as_str(),
            first.subresource.as_str(),
            first.name.as_str()
        ),
        ("alice", "get", "nodes", "proxy", "n1")
    );

    // Discovery lists both review groups.
    let groups = client.list_api_groups().await.unwrap();
    let names: Vec<&str> = groups.groups.iter().map(|g| g.name.as_str()).collect();
    assert!(names.contains(&"authentication.k8s.io"), "{names:?}");
    assert!(names.contains(&"authorization.k8s.io"), "{names:?}");
    let resources = client
        .list_api_group_resources("authorization.k8s.io/v1")
        .await
        .unwrap();
    assert_eq!(resources.resources[0].name, "subjectaccessreviews");
    assert_eq!(resources.resources[0].verbs, ["create"]);
}
