//! The endpoints through `router`, without TLS: healthz, pods, runningpods, configz,
//! containerLogs and /logs/.

mod support;

use std::io::Write;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use support::{cri_lines, run_pod, view};
use tower::ServiceExt;

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, String) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn healthz_pods_runningpods_and_configz() {
    let view = view();
    let logs = tempfile::tempdir().unwrap();
    let app = kubelet_server::router(view.clone(), logs.path().to_path_buf());
    assert_eq!(get(&app, "/healthz").await, (StatusCode::OK, "ok".into()));
    assert_eq!(
        get(&app, "/healthz/ping").await,
        (StatusCode::OK, "ok".into())
    );
    assert_eq!(
        get(&app, "/healthz/log").await,
        (StatusCode::OK, "ok".into())
    );
    assert_eq!(
        get(&app, "/healthz/syncloop").await,
        (StatusCode::OK, "ok".into())
    );
    *view.sync_loop.lock().unwrap() = Err("sync loop stalled for 5m".into());
    let (status, body) = get(&app, "/healthz").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        "[+]ping ok\n[+]log ok\n[-]syncloop failed: reason withheld\nhealthz check failed\n"
    );
    let (status, body) = get(&app, "/healthz/syncloop").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("sync loop stalled"), "{body}");

    let pod = run_pod(&view, logs.path(), "default", "web", &["app"]).await;
    pod.start(&view, "app", 0).await;
    let (status, body) = get(&app, "/pods").await;
    assert_eq!(status, StatusCode::OK);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["items"][0]["metadata"]["name"], "web");

    let (status, body) = get(&app, "/runningpods/").await;
    assert_eq!(status, StatusCode::OK);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["metadata"]["namespace"], "default");
    assert_eq!(list["items"][0]["metadata"]["uid"], "uid-web");
    assert_eq!(list["items"][0]["spec"]["containers"][0]["name"], "app");

    let (status, body) = get(&app, "/configz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["kubeletconfig"]["maxPods"],
        110
    );
}

#[tokio::test]
async fn container_logs_options_and_errors() {
    let view = view();
    let logs = tempfile::tempdir().unwrap();
    let app = kubelet_server::router(view.clone(), logs.path().to_path_buf());
    let pod = run_pod(&view, logs.path(), "ns", "web", &["app"]).await;
    let (first, first_log) = pod.start(&view, "app", 0).await;
    std::fs::write(&first_log, cri_lines(&[(1, "F", "old")])).unwrap();
    view.fake.exit_container(&first, 1);
    let (_, log) = pod.start(&view, "app", 1).await;
    std::fs::write(
        &log,
        cri_lines(&[
            (1, "F", "one"),
            (2, "P", "tw"),
            (2, "F", "o"),
            (3, "F", "three"),
        ]),
    )
    .unwrap();

    let base = "/containerLogs/ns/web/app";
    assert_eq!(
        get(&app, base).await,
        (StatusCode::OK, "one\ntwo\nthree\n".into())
    );
    assert_eq!(get(&app, &format!("{base}?tailLines=1")).await.1, "three\n");
    assert_eq!(
        get(&app, &format!("{base}?limitBytes=6")).await.1,
        "one\ntw"
    );
    assert_eq!(
        get(&app, &format!("{base}?timestamps=true&tailLines=3"))
            .await
            .1,
        "2024-01-01T00:00:02.000000001Z two\n2024-01-01T00:00:03.000000001Z three\n"
    );
    assert_eq!(
        get(&app, &format!("{base}?sinceTime=2024-01-01T00:00:02Z"))
            .await
            .1,
        "two\nthree\n"
    );
    assert_eq!(get(&app, &format!("{base}?previous=true")).await.1, "old\n");

    assert_eq!(
        get(&app, "/containerLogs/ns/nope/app").await,
        (StatusCode::NOT_FOUND, "pod \"nope\" does not exist".into())
    );
    assert_eq!(
        get(&app, "/containerLogs/ns/web/db").await,
        (
            StatusCode::NOT_FOUND,
            "container \"db\" not found in pod \"web\"".into()
        )
    );
    assert_eq!(
        get(&app, &format!("{base}?tailLines=-1")).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        get(&app, &format!("{base}?follow=maybe")).await.0,
        StatusCode::BAD_REQUEST
    );

    let lonely = run_pod(&view, logs.path(), "ns", "lonely", &["app"]).await;
    lonely.start(&view, "app", 0).await;
    assert_eq!(
        get(&app, "/containerLogs/ns/lonely/app?previous=true").await,
        (
            StatusCode::BAD_REQUEST,
            "previous terminated container \"app\" in pod \"lonely\" not found".into()
        )
    );
}

#[tokio::test]
async fn container_logs_follow_across_rotation() {
    let view = view();
    let logs = tempfile::tempdir().unwrap();
    let app = kubelet_server::router(view.clone(), logs.path().to_path_buf());
    let pod = run_pod(&view, logs.path(), "ns", "web", &["app"]).await;
    let (id, log) = pod.start(&view, "app", 0).await;
    std::fs::write(&log, cri_lines(&[(1, "F", "before")])).unwrap();
    let response = app
        .clone()
        .oneshot(
            Request::get("/containerLogs/ns/web/app?follow=true")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    let mut received = String::new();
    let mut read_until = async |received: &mut String, want: &str| {
        while !received.contains(want) {
            let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
                .await
                .expect("log line in time");
            received.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
        }
    };
    read_until(&mut received, "before\n").await;
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(cri_lines(&[(2, "F", "appended")]).as_bytes())
        .unwrap();
    read_until(&mut received, "appended\n").await;
    std::fs::rename(&log, log.with_extension("log.20240101-000003")).unwrap();
    file.write_all(cri_lines(&[(3, "F", "late write to the rotated file")]).as_bytes())
        .unwrap();
    std::fs::write(&log, cri_lines(&[(4, "F", "after rotation")])).unwrap();
    read_until(&mut received, "after rotation\n").await;
    assert_eq!(
        received,
        "before\nappended\nlate write to the rotated file\nafter rotation\n"
    );
    view.fake.exit_container(&id, 0);
    let end = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("stream ends when the container exits");
    assert!(end.is_none());
}

#[tokio::test]
async fn host_logs_serve_files_and_listings_but_nothing_outside() {
    let view = view();
    let root = tempfile::tempdir().unwrap();
    let log_dir = root.path().join("log");
    std::fs::create_dir_all(log_dir.join("pods")).unwrap();
    std::fs::write(log_dir.join("syslog"), "boot ok\n").unwrap();
    std::fs::write(root.path().join("secret"), "top secret\n").unwrap();
    std::os::unix::fs::symlink(root.path().join("secret"), log_dir.join("escape")).unwrap();
    std::os::unix::fs::symlink(root.path(), log_dir.join("escape-dir")).unwrap();
    let app = kubelet_server::router(view, log_dir.clone());

    assert_eq!(
        get(&app, "/logs/syslog").await,
        (StatusCode::OK, "boot ok\n".into())
    );
    let (status, listing) = get(&app, "/logs/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        listing.contains("<a href=\"syslog\">syslog</a>"),
        "{listing}"
    );
    assert!(listing.contains("<a href=\"pods/\">pods/</a>"), "{listing}");
    assert_eq!(
        get(&app, "/logs/pods").await.0,
        StatusCode::PERMANENT_REDIRECT
    );

    let secret = root.path().join("secret");
    for attempt in [
        "/logs/../secret".to_string(),
        "/logs/%2e%2e/secret".into(),
        "/logs/%2E%2E%2Fsecret".into(),
        "/logs/pods/..%2f..%2fsecret".into(),
        "/logs/..%252fsecret".into(),
        format!("/logs/{}", secret.display()),
        format!(
            "/logs/%2F{}",
            secret.display().to_string().trim_start_matches('/')
        ),
        "/logs/escape".into(),
        "/logs/escape-dir/secret".into(),
        "/logs/escape-dir/".into(),
    ] {
        let (status, body) = get(&app, &attempt).await;
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
            "{attempt}: {status} {body}"
        );
        assert!(!body.contains("top secret"), "{attempt}");
    }
    assert_eq!(get(&app, "/logs/escape").await.0, StatusCode::FORBIDDEN);
}

async fn request(app: &axum::Router, method: &str, uri: &str) -> StatusCode {
    app.clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn the_read_only_router_serves_only_what_upstream_serves_there() {
    let view = view();
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(logs.path().join("syslog"), "secret\n").unwrap();
    let pod = run_pod(&view, logs.path(), "default", "web", &["app"]).await;
    pod.start(&view, "app", 0).await;
    let app = kubelet_server::read_only_router(view.clone());

    assert_eq!(get(&app, "/healthz").await, (StatusCode::OK, "ok".into()));
    assert_eq!(get(&app, "/healthz/syncloop").await.0, StatusCode::OK);
    let (status, body) = get(&app, "/pods").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"web\""), "{body}");
    for (path, expected) in [
        ("/metrics", "# Kubelet\n"),
        ("/metrics/cadvisor", "# Cadvisor\n"),
        ("/metrics/resource", "# Resource\n"),
        ("/metrics/probes", "# Probes\n"),
    ] {
        assert_eq!(get(&app, path).await, (StatusCode::OK, expected.into()));
    }
    // /stats/summary is routed; the fake kubelet has no stats.
    assert_ne!(
        request(&app, "GET", "/stats/summary").await,
        StatusCode::METHOD_NOT_ALLOWED
    );

    // Nothing that runs commands, reads logs or shows the configuration, on any method.
    for path in [
        "/configz",
        "/runningpods/",
        "/logs/",
        "/logs/syslog",
        "/containerLogs/default/web/app",
        "/exec/default/web/app?command=ls&output=1",
        "/attach/default/web/app?output=1",
        "/portForward/default/web?port=80",
    ] {
        for method in ["GET", "POST"] {
            assert_eq!(
                request(&app, method, path).await,
                StatusCode::NOT_FOUND,
                "{method} {path}"
            );
        }
    }
    assert_eq!(
        request(&app, "POST", "/pods").await,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        request(&app, "DELETE", "/pods/default/web").await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn run_answers_the_output_of_a_command() {
    let view = view();
    let logs = tempfile::tempdir().unwrap();
    let pod = run_pod(&view, logs.path(), "default", "web", &["app"]).await;
    pod.start(&view, "app", 0).await;
    let app = kubelet_server::router(view.clone(), logs.path().to_path_buf());
    let post = |uri: &str| {
        app.clone()
            .oneshot(Request::post(uri).body(Body::empty()).unwrap())
    };
    let body = |response: axum::response::Response| async move {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    };

    view.fake.set_exec_result(
        "app",
        kubelet_cri::api::ExecSyncResponse {
            stdout: b"out\n".to_vec(),
            stderr: b"err\n".to_vec(),
            exit_code: 0,
        },
    );
    let response = post("/run/default/web/app?cmd=cat+/etc/hostname")
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(response).await, "out\nerr\n");
    let response = post("/run/default/web/uid-web/app?cmd=true").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    view.fake.set_exec_result(
        "app",
        kubelet_cri::api::ExecSyncResponse {
            stdout: vec![],
            stderr: b"no such file".to_vec(),
            exit_code: 2,
        },
    );
    let response = post("/run/default/web/app?cmd=ls+/nope").await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body(response).await,
        "command 'ls /nope' exited with 2: no such file"
    );

    let response = post("/run/default/web/other-uid/app?cmd=true")
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = post("/run/default/web/db?cmd=true").await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(body(response).await, "container not found (\"db\")");
    let response = post("/run/default/ghost/app?cmd=true").await.unwrap();
    assert_eq!(body(response).await, "pod does not exist");
}
