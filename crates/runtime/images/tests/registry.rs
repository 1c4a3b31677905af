//! Pulls from a real registry: Debian's docker-registry on loopback, images pushed by skopeo.
//! Needs /usr/bin/docker-registry (package docker-registry), skopeo and openssl; fails without
//! them.

mod common;

use common::oci::{Compression, E, Options, TestImage, layer, write_archive, write_list_archive};
use common::registry::{Registry, certs_d};
use common::token::TokenServer;
use k8s_cri::v1::AuthConfig;
use runtime_images::{ImageError, ImageStore};
use std::path::Path;

fn test_image(marker: &str, compression: Compression) -> TestImage {
    let base = layer(&[E::Dir("etc/"), E::File("etc/hostname", marker.as_bytes())]);
    let top = layer(&[E::Dir("bin/"), E::File("bin/app", b"app")]);
    TestImage::new(
        None,
        &[base, top],
        Options {
            compression,
            ..Default::default()
        },
    )
}

fn push(registry: &Registry, image: &TestImage, repo_tag: &str) {
    let archive = registry
        .dir
        .path()
        .join(format!("{}.tar", repo_tag.replace(['/', ':'], "_")));
    write_archive(&archive, &[image], false);
    registry.push(&archive, repo_tag);
}

fn plain_http(registry: &Registry) -> tempfile::TempDir {
    certs_d(&[(
        &registry.host(),
        format!("server = \"http://{}\"\n", registry.host()),
    )])
}

fn ingest_is_empty(root: &Path) -> bool {
    std::fs::read_dir(root.join("content/ingest"))
        .unwrap()
        .count()
        == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_over_plain_http_with_one_download_for_concurrent_pulls() {
    let registry = Registry::start(None);
    let image = test_image("plain", Compression::Gzip);
    push(&registry, &image, "test/app:1");
    let config = plain_http(&registry);
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path(), Some(config.path().to_path_buf())).unwrap();

    let reference = format!("{}/test/app:1", registry.host());
    let pulls = (0..4).map(|_| {
        let store = store.clone();
        let reference = reference.clone();
        tokio::spawn(async move { store.pull(&reference, None).await })
    });
    let results = futures::future::join_all(pulls).await;
    for r in results {
        let pulled = r.unwrap().unwrap();
        assert_eq!(pulled.id, image.id());
        assert_eq!(pulled.repo_tags, std::slice::from_ref(&reference));
        assert_eq!(
            pulled.repo_digests,
            [format!(
                "{}/test/app@{}",
                registry.host(),
                image.manifest.digest
            )]
        );
    }
    for blob in image.layers.iter().chain(std::iter::once(&image.config)) {
        assert_eq!(
            registry.blob_gets("test/app", &blob.digest),
            1,
            "GETs of {}:\n{}",
            blob.digest,
            registry.log_text()
        );
    }
    let lowers = store.lease("c", &reference).unwrap();
    assert_eq!(
        std::fs::read(lowers[1].join("etc/hostname")).unwrap(),
        b"plain"
    );
    assert!(lowers[0].join("bin/app").is_file());

    // Pulled again: nothing downloaded twice.
    store.pull(&reference, None).await.unwrap();
    assert_eq!(registry.blob_gets("test/app", &image.layers[0].digest), 1);

    // A missing tag: NotFound, naming the image.
    let missing = format!("{}/test/app:nope", registry.host());
    let err = store.pull(&missing, None).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains(&missing), "{err}");
    assert!(ingest_is_empty(tmp.path()));
}

#[tokio::test]
async fn zstd_and_uncompressed_layers_pull() {
    let registry = Registry::start(None);
    let zstd = test_image("zstd", Compression::Zstd);
    let plain = test_image("none", Compression::None);
    push(&registry, &zstd, "test/zstd:1");
    push(&registry, &plain, "test/plain:1");
    let config = plain_http(&registry);
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path(), Some(config.path().to_path_buf())).unwrap();
    for (image, repo) in [(&zstd, "test/zstd:1"), (&plain, "test/plain:1")] {
        let pulled = store
            .pull(&format!("{}/{repo}", registry.host()), None)
            .await
            .unwrap();
        assert_eq!(pulled.id, image.id(), "{repo}");
    }
}

#[tokio::test]
async fn basic_auth_from_the_cri_auth_config() {
    let registry = Registry::start(Some(("alice", "s3cret")));
    let image = test_image("auth", Compression::Gzip);
    push(&registry, &image, "private/app:1");
    let config = plain_http(&registry);
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path(), Some(config.path().to_path_buf())).unwrap();
    let reference = format!("{}/private/app:1", registry.host());

    let err = store.pull(&reference, None).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&reference) && msg.contains("credentials"),
        "{msg}"
    );
    let wrong = AuthConfig {
        username: "alice".into(),
        password: "wrong".into(),
        ..Default::default()
    };
    let err = store.pull(&reference, Some(&wrong)).await.unwrap_err();
    assert!(err.to_string().contains("credentials"), "{err}");
    assert!(store.list().is_empty());

    let auth = AuthConfig {
        username: "alice".into(),
        password: "s3cret".into(),
        ..Default::default()
    };
    assert_eq!(
        store.pull(&reference, Some(&auth)).await.unwrap().id,
        image.id()
    );
    store.remove(&reference).unwrap();
    assert!(store.list().is_empty());
    // The same credentials as docker's `auth` field: base64 of user:password.
    let auth = AuthConfig {
        auth: "YWxpY2U6czNjcmV0".into(),
        ..Default::default()
    };
    assert_eq!(
        store.pull(&reference, Some(&auth)).await.unwrap().id,
        image.id()
    );
}

/// Token auth (distribution's `auth: token`): the registry answers 401 with a Bearer challenge
/// naming the token server in the test; the pull gets a token there with each credential form
/// of the CRI `AuthConfig`.
#[tokio::test]
async fn bearer_token_auth_from_the_cri_auth_config() {
    let tokens = TokenServer::start("bob", "t0ken-pass", "refresh-me");
    let registry = Registry::start_token(&tokens);
    let image = test_image("bearer", Compression::Gzip);
    push(&registry, &image, "private/app:1");
    let config = plain_http(&registry);
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path(), Some(config.path().to_path_buf())).unwrap();
    let reference = format!("{}/private/app:1", registry.host());
    let pull_and_remove = async |auth: &AuthConfig| {
        let pulled = store.pull(&reference, Some(auth)).await;
        let pulled = pulled.unwrap_or_else(|e| panic!("{e}\n{:?}", tokens.requests()));
        assert_eq!(pulled.id, image.id());
        store.remove(&reference).unwrap();
    };

    // Username and password: Basic at the token server, the token at the registry.
    let auth = AuthConfig {
        username: "bob".into(),
        password: "t0ken-pass".into(),
        ..Default::default()
    };
    pull_and_remove(&auth).await;
    assert!(
        tokens.requests().iter().any(|r| r == "GET user=bob ok"),
        "{:?}",
        tokens.requests()
    );

    // A wrong password: refused, naming the image.
    let wrong = AuthConfig {
        username: "bob".into(),
        password: "wrong".into(),
        ..Default::default()
    };
    let err = store.pull(&reference, Some(&wrong)).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&reference) && msg.contains("refused the credentials"),
        "{msg}"
    );
    assert!(!err.is_not_found(), "{msg}");

    // No credentials at all.
    let err = store.pull(&reference, None).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&reference) && msg.contains("requires credentials and none were given"),
        "{msg}"
    );
    assert!(store.list().is_empty());
    assert!(ingest_is_empty(tmp.path()));

    // A registry token: sent as the bearer token as it is, no token server involved.
    let served = tokens.requests().len();
    let auth = AuthConfig {
        registry_token: tokens.mint("carol", "private/app", &["pull"]),
        ..Default::default()
    };
    pull_and_remove(&auth).await;
    assert_eq!(tokens.requests().len(), served, "{:?}", tokens.requests());
    // One for another repository does not do.
    let auth = AuthConfig {
        registry_token: tokens.mint("carol", "private/other", &["pull"]),
        ..Default::default()
    };
    let err = store.pull(&reference, Some(&auth)).await.unwrap_err();
    assert!(err.to_string().contains("refused the credentials"), "{err}");

    // An identity token: containerd's OAuth2 refresh-token POST to the token server.
    let auth = AuthConfig {
        identity_token: "refresh-me".into(),
        ..Default::default()
    };
    pull_and_remove(&auth).await;
    let post = "POST grant_type=refresh_token client_id=containerd-client service=test-registry \
                scope=repository:private/app:pull ok"
        .to_string();
    assert!(tokens.requests().contains(&post), "{:?}", tokens.requests());
    assert!(
        !tokens.requests().iter().any(|r| r.contains("<token>")),
        "{:?}",
        tokens.requests()
    );
    // A wrong one is refused, by the POST and by the GET tried next (as containerd does for
    // token servers that answer a POST with 401).
    let auth = AuthConfig {
        identity_token: "stale".into(),
        ..Default::default()
    };
    let served = tokens.requests().len();
    let err = store.pull(&reference, Some(&auth)).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&reference) && msg.contains("refused the credentials"),
        "{msg}"
    );
    let requests = &tokens.requests()[served..];
    assert_eq!(
        requests[..2],
        [
            post.replace(" ok", " denied"),
            "GET user=<token> denied".to_string()
        ],
        "{requests:?}"
    );
    assert!(store.list().is_empty());
}

#[tokio::test]
async fn a_mirror_from_hosts_toml_serves_an_upstream_name() {
    let registry = Registry::start(None);
    let image = test_image("mirrored", Compression::Gzip);
    push(&registry, &image, "team/app:2");
    // The upstream does not exist; its mirror (tried first) is the loopback registry.
    let config = certs_d(&[(
        "registry.upstream.invalid",
        format!(
            "server = \"https://registry.upstream.invalid\"\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            registry.host()
        ),
    )]);
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path(), Some(config.path().to_path_buf())).unwrap();
    let pulled = store
        .pull("registry.upstream.invalid/team/app:2", None)
        .await
        .unwrap();
    assert_eq!(pulled.id, image.id());
    assert_eq!(pulled.repo_tags, ["registry.upstream.invalid/team/app:2"]);
    assert!(registry.log_text().contains("ns=registry.upstream.invalid"));
}

#[tokio::test]
async fn a_registry_that_is_down_gives_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let config = certs_d(&[(&host, format!("server = \"http://{host}\"\n"))]);
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path(), Some(config.path().to_path_buf())).unwrap();
    let reference = format!("{host}/x/y:1");
    let err = store.pull(&reference, None).await.unwrap_err();
    let ImageError::Pull { image, source } = &err else {
        panic!("{err}")
    };
    assert_eq!(image, &reference);
    assert!(matches!(**source, ImageError::Unreachable { .. }), "{err}");
    assert!(ingest_is_empty(tmp.path()));
}

#[tokio::test]
async fn a_manifest_list_resolves_to_linux_amd64() {
    let registry = Registry::start(None);
    let amd64 = test_image("amd64", Compression::Gzip);
    let arm64 = test_image("arm64", Compression::Gzip);
    let archive = registry.dir.path().join("list.tar");
    let list = write_list_archive(&archive, &[&amd64, &arm64]);
    registry.push(&archive, "test/multi:1");
    let config = plain_http(&registry);
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path(), Some(config.path().to_path_buf())).unwrap();
    let pulled = store
        .pull(&format!("{}/test/multi:1", registry.host()), None)
        .await
        .unwrap();
    assert_eq!(pulled.id, amd64.id());
    // The repo digest is the list's, as the tag resolved to it.
    let repo_digest = format!("{}/test/multi@{list}", registry.host());
    assert_eq!(pulled.repo_digests, std::slice::from_ref(&repo_digest));
    assert_eq!(store.get(&repo_digest).unwrap().id, amd64.id());
    assert_eq!(registry.blob_gets("test/multi", &arm64.layers[0].digest), 0);
    // By digest too.
    store.remove(amd64.id()).unwrap();
    let by_digest = store.pull(&repo_digest, None).await.unwrap();
    assert_eq!(by_digest.id, amd64.id());
    assert!(by_digest.repo_tags.is_empty());
}

#[tokio::test]
async fn https_with_a_ca_from_hosts_toml_or_skip_verify() {
    let registry = Registry::start_tls();
    let image = test_image("tls", Compression::Gzip);
    push(&registry, &image, "test/tls:1");
    let host = registry.host();
    let reference = format!("{host}/test/tls:1");
    let ca = registry.dir.path().join("ca.pem");
    for settings in [
        format!("ca = \"{}\"\n", ca.display()),
        "skip_verify = true\n".to_string(),
    ] {
        let config = certs_d(&[(&host, format!("server = \"https://{host}\"\n{settings}"))]);
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(tmp.path(), Some(config.path().to_path_buf())).unwrap();
        let pulled = store.pull(&reference, None).await;
        assert_eq!(pulled.unwrap().id, image.id(), "{settings}");
    }
    // Neither: the unknown CA is refused.
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path(), None).unwrap();
    let err = store.pull(&reference, None).await.unwrap_err();
    assert!(err.to_string().contains(&reference), "{err}");
}
