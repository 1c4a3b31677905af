//! Image garbage collection against real images, on the built-in runtime of a node of its own
//! (removing images from the runtime the other suites share would break them): over the high
//! threshold, the unused image goes and the image of an exited container stays.

mod support;

use nix::sys::signal::Signal;
use std::time::Duration;
use support::builtin::Node;
use support::{busybox_pod, wait_until};

const START: Duration = Duration::from_secs(60);
const PAUSE_REPO: &str = "localhost/pause";
const BUSYBOX_REPO: &str = "localhost/busybox";

#[tokio::test]
async fn image_gc_removes_unused_images_and_keeps_those_of_any_container() {
    let mut node = Node::new("imagegc", 1);
    let args = node.kubelet_args("imagegc");
    let config = node.dir.join("config.yaml");
    let base = std::fs::read_to_string(&config).unwrap();
    // First without image GC (a high threshold of 100 turns it off), so the pod's container
    // exists before any round runs.
    std::fs::write(&config, format!("{base}imageGCHighThresholdPercent: 100\n")).unwrap();
    let manifest = node.dir.join("manifests/once.yaml");
    std::fs::write(
        &manifest,
        busybox_pod("once", "Never", &[("done", "echo done")], ""),
    )
    .unwrap();
    node.start_kubelet(&args);
    let socket = node.kubelet_socket();
    node.wait_for_socket(&socket);
    wait_until("the container exited", START, node.log_path(), || async {
        node.containers(&socket)
            .iter()
            .any(|c| c["state"] == "CONTAINER_EXITED")
            .then_some(())
    })
    .await;
    let images = node.crictl_ok(&socket, &["images"]);
    assert!(
        images.contains(PAUSE_REPO) && images.contains(BUSYBOX_REPO),
        "{images}"
    );
    assert!(
        !node.log().contains("removed an unused image"),
        "{}",
        node.log()
    );

    // Any disk usage is over a 1% threshold, and 0% cannot be reached: every image that may go
    // goes, at the first round after start.
    node.stop(Signal::SIGKILL);
    std::fs::write(
        &config,
        format!(
            "{base}imageGCHighThresholdPercent: 1\nimageGCLowThresholdPercent: 0\nimageMinimumGCAge: 1ns\n"
        ),
    )
    .unwrap();
    node.start_kubelet(&args);
    node.wait_for_socket(&socket);
    wait_until(
        "the pause image removed",
        START,
        node.log_path(),
        || async {
            let images = node.crictl(&socket, &["images"]).ok()?;
            (!images.contains(PAUSE_REPO)).then_some(())
        },
    )
    .await;
    let log = node.log();
    assert!(log.contains("removed an unused image"), "{log}");
    assert!(
        log.contains("Failed to garbage collect required amount of images. Attempted to free"),
        "{log}"
    );
    let images = node.crictl_ok(&socket, &["images"]);
    assert!(
        images.contains(BUSYBOX_REPO),
        "the exited container's image went: {images}"
    );
    assert!(
        node.containers(&socket)
            .iter()
            .any(|c| c["state"] == "CONTAINER_EXITED"),
        "the exited container went"
    );

    std::fs::remove_file(&manifest).unwrap();
    node.wait_until_empty(&socket, START).await;
    node.stop(Signal::SIGTERM);
}
