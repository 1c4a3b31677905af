use super::support::{IMAGE, container_config, fake_with_pod, sandbox_config, start};
use crate::fake::FakeRuntime;
use crate::{CriError, ImageService, Runtime, RuntimeService};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn an_injected_error_fails_the_next_call_only() {
    let (fake, sandbox) = fake_with_pod("web").await;
    fake.inject_error("StartContainer", "OCI runtime start failed");
    fake.inject_error("StartContainer", "second failure");
    let app = fake
        .create_container(
            &sandbox,
            container_config("app", IMAGE),
            sandbox_config("web"),
        )
        .await
        .expect("other RPCs are unaffected");

    let first = fake.start_container(&app).await.expect_err("injected");
    assert!(
        matches!(&first, CriError::Rpc { rpc: "StartContainer", code: tonic::Code::Unknown, message } if message == "OCI runtime start failed"),
        "{first:?}"
    );
    let second = fake
        .start_container(&app)
        .await
        .expect_err("injected again");
    assert!(second.to_string().contains("second failure"), "{second}");
    fake.start_container(&app)
        .await
        .expect("injections are used up");
}

#[tokio::test(start_paused = true)]
async fn a_specific_cri_error_can_be_injected() {
    let fake = FakeRuntime::new();
    fake.inject_cri_error(
        "ListContainers",
        CriError::Timeout {
            rpc: "ListContainers",
            timeout: Duration::from_secs(2),
        },
    );
    let error = fake.list_containers(None).await.expect_err("injected");
    assert!(matches!(error, CriError::Timeout { .. }), "{error:?}");
    assert!(
        fake.list_containers(None)
            .await
            .expect("next call")
            .is_empty()
    );
}

#[test]
#[should_panic(expected = "is not a CRI method")]
fn injecting_into_an_unknown_method_is_a_test_bug() {
    FakeRuntime::new().inject_error("StartContainers", "typo");
}

#[tokio::test(start_paused = true)]
async fn the_call_log_names_each_rpc_and_its_subject() {
    let fake = FakeRuntime::new();
    fake.set_pull_result("busybox", Ok(()));
    fake.image_status(&crate::api::ImageSpec {
        image: IMAGE.to_string(),
        ..Default::default()
    })
    .await
    .expect("status");
    fake.pull_image(
        &crate::api::ImageSpec {
            image: IMAGE.to_string(),
            ..Default::default()
        },
        None,
        None,
    )
    .await
    .expect("pull");
    let sandbox = fake
        .run_pod_sandbox(sandbox_config("web"), "")
        .await
        .expect("sandbox");
    let app = start(&fake, &sandbox, "web", "app").await;
    fake.list_containers(None).await.expect("list");
    fake.stop_container(&app, Duration::from_secs(1))
        .await
        .expect("stop");
    fake.stop_pod_sandbox(&sandbox).await.expect("stop sandbox");
    fake.container_status("deadbeef")
        .await
        .expect_err("unknown id");

    assert_eq!(
        fake.calls(),
        [
            "ImageStatus busybox",
            "PullImage busybox",
            "RunPodSandbox web",
            "CreateContainer app",
            "StartContainer app",
            "ListContainers",
            "StopContainer app",
            "StopPodSandbox web",
            "ContainerStatus deadbeef",
        ]
    );
    assert_eq!(
        fake.actions(),
        [
            "PullImage busybox",
            "RunPodSandbox web",
            "CreateContainer app",
            "StartContainer app",
            "StopContainer app",
            "StopPodSandbox web",
        ]
    );
    fake.clear_calls();
    assert!(fake.calls().is_empty());
    assert_eq!(fake.sandbox_id("web"), Some(sandbox));
    assert_eq!(fake.container_id("app"), Some(app));
    assert!(fake.calls().is_empty(), "test helpers are not RPCs");
}

#[tokio::test(start_paused = true)]
async fn it_serves_as_a_shared_runtime_object() {
    let fake = FakeRuntime::new();
    let runtime: Arc<dyn Runtime> = Arc::new(fake.clone());
    let version = runtime.version().await.expect("version");
    assert_eq!(
        (
            version.runtime_name.as_str(),
            version.runtime_api_version.as_str()
        ),
        ("fake", "v1")
    );
    let status = runtime.status().await.expect("status");
    let conditions = status.status.expect("runtime status").conditions;
    let ready: Vec<(&str, bool)> = conditions
        .iter()
        .map(|c| (c.r#type.as_str(), c.status))
        .collect();
    assert_eq!(ready, [("RuntimeReady", true), ("NetworkReady", true)]);
    assert_eq!(
        fake.calls(),
        ["Version", "Status"],
        "clones share one state"
    );
}

#[tokio::test(start_paused = true)]
async fn runtime_conditions_can_be_scripted() {
    let fake = FakeRuntime::new();
    fake.set_runtime_condition(
        "NetworkReady",
        false,
        "NetworkPluginNotReady",
        "cni config uninitialized",
    );
    let conditions = fake
        .status()
        .await
        .expect("status")
        .status
        .expect("runtime status")
        .conditions;
    assert_eq!(conditions.len(), 2);
    let network = conditions
        .iter()
        .find(|c| c.r#type == "NetworkReady")
        .expect("network condition");
    assert!(!network.status);
    assert_eq!(network.reason, "NetworkPluginNotReady");
    assert_eq!(network.message, "cni config uninitialized");
}

#[tokio::test(start_paused = true)]
async fn a_hanging_exec_times_out_on_tokio_time() {
    let (fake, sandbox) = fake_with_pod("web").await;
    let app = start(&fake, &sandbox, "web", "app").await;
    fake.set_exec_hangs("app");
    let began = tokio::time::Instant::now();
    let error = fake
        .exec_sync(&app, vec!["true".into()], Duration::from_secs(3))
        .await
        .expect_err("times out");
    assert!(
        matches!(error, CriError::Timeout { rpc: "ExecSync", timeout } if timeout == Duration::from_secs(3)),
        "{error:?}"
    );
    assert_eq!(began.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_delayed_pull_completes_after_its_delay() {
    let fake = FakeRuntime::new();
    fake.set_pull_result("nginx", Ok(()));
    fake.set_pull_delay("nginx", Duration::from_secs(20));
    let spec = crate::api::ImageSpec {
        image: "nginx".to_string(),
        ..Default::default()
    };
    let pulling = tokio::spawn({
        let fake = fake.clone();
        let spec = spec.clone();
        async move { fake.pull_image(&spec, None, None).await }
    });
    tokio::time::sleep(Duration::from_secs(19)).await;
    assert!(
        fake.image_status(&spec).await.expect("status").is_none(),
        "still pulling"
    );
    let id = pulling.await.expect("pull task").expect("pull");
    let present = fake
        .image_status(&spec)
        .await
        .expect("status")
        .expect("pulled");
    assert_eq!(present.id, id);
}
