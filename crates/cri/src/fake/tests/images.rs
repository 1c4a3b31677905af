use crate::ImageService;
use crate::api::ImageSpec;
use crate::fake::FakeRuntime;

fn spec(image: &str) -> ImageSpec {
    ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn an_unknown_image_fails_to_pull_with_not_found() {
    let fake = FakeRuntime::new();
    let error = fake
        .pull_image(&spec("nginx"), None, None)
        .await
        .expect_err("unknown");
    assert!(error.is_not_found(), "{error}");
    assert!(
        error.to_string().contains(
            "failed to resolve reference \"docker.io/library/nginx:latest\": docker.io/library/nginx:latest: not found"
        ),
        "{error}"
    );
    assert!(
        fake.image_status(&spec("nginx"))
            .await
            .expect("status")
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn scripted_pulls_succeed_or_fail_as_told() {
    let fake = FakeRuntime::new();
    fake.set_pull_result("nginx:1.27", Ok(()));
    fake.set_pull_result("docker.io/private/app", Err("pull access denied".into()));

    let image_ref = fake
        .pull_image(&spec("nginx:1.27"), None, None)
        .await
        .expect("pull");
    let image = fake
        .image_status(&spec("docker.io/library/nginx:1.27"))
        .await
        .expect("status")
        .expect("present after the pull");
    assert_eq!(image.id, image_ref);
    assert_eq!(image.repo_tags, ["docker.io/library/nginx:1.27"]);
    assert!(image.size > 0);

    let error = fake
        .pull_image(&spec("private/app"), None, None)
        .await
        .expect_err("scripted failure");
    assert!(error.to_string().contains("pull access denied"), "{error}");
    assert!(!error.is_not_found());
}

#[tokio::test(start_paused = true)]
async fn present_images_are_found_by_name_digest_or_id_and_removed_by_any() {
    let fake = FakeRuntime::new();
    let id = fake.add_image("busybox:1.35");
    fake.add_image("localhost/pause:3.10");
    assert_eq!(
        fake.pull_image(&spec("busybox:1.35"), None, None)
            .await
            .expect("pull"),
        id
    );

    let by_name = fake
        .image_status(&spec("busybox:1.35"))
        .await
        .expect("status")
        .expect("found");
    let by_id = fake
        .image_status(&spec(&id))
        .await
        .expect("status")
        .expect("found");
    let by_digest = fake
        .image_status(&spec(&by_name.repo_digests[0]))
        .await
        .expect("status")
        .expect("found");
    assert_eq!(
        (by_id.id.as_str(), by_digest.id.as_str()),
        (id.as_str(), id.as_str())
    );
    assert!(
        fake.image_status(&spec("busybox"))
            .await
            .expect("status")
            .is_none(),
        "latest is another tag"
    );

    let listed = fake.list_images().await.expect("list");
    assert_eq!(listed.len(), 2);
    let filesystems = fake.image_fs_info().await.expect("fs info");
    let used = filesystems[0].used_bytes.expect("used").value;
    assert_eq!(used, listed.iter().map(|i| i.size).sum::<u64>());
    assert!(filesystems[0].inodes_used.expect("inodes").value > 0);

    fake.remove_image(&spec(&id)).await.expect("remove by id");
    assert!(
        fake.image_status(&spec("busybox:1.35"))
            .await
            .expect("status")
            .is_none()
    );
    fake.remove_image(&spec("busybox:1.35"))
        .await
        .expect("removing an absent image is fine");
    assert_eq!(fake.list_images().await.expect("list").len(), 1);
}
