//! End to end on the built-in runtime, without containerd: `kubelet runtime` served alone and
//! driven by crictl as containerd would be, a kubelet embedding the runtime (no
//! --container-runtime-endpoint) running a static pod that survives the kubelet's SIGKILL, and a
//! container exit reaching the pod's status through the runtime's container events, and the
//! /stats/summary of a pod on it.

mod support;

use nix::sys::signal::Signal;
use serde_json::Value;
use std::time::Duration;
use support::builtin::Node;
use support::{BUSYBOX, busybox_pod, free_port, served_container, wait_until};

const START: Duration = Duration::from_secs(60);

fn state_of(containers: &[Value], id: &str) -> Option<String> {
    containers
        .iter()
        .find(|c| c["id"] == id)
        .and_then(|c| c["state"].as_str())
        .map(str::to_string)
}

#[tokio::test]
async fn crictl_drives_the_runtime_served_alone() {
    let mut node = Node::new("alone", 1);
    let socket = node.dir.join("cri.sock");
    node.start_runtime(&socket);
    let pod_config = node.dir.join("pod.json");
    let container_config = node.dir.join("container.json");
    std::fs::write(
        &pod_config,
        serde_json::json!({
            "metadata": {"name": "alone", "namespace": "default", "uid": "builtin-alone-1", "attempt": 0},
            "log_directory": node.dir.join("pod-logs"),
            "linux": {},
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        &container_config,
        serde_json::json!({
            "metadata": {"name": "sh"},
            "image": {"image": BUSYBOX},
            "command": ["/bin/sh", "-c", "echo hello-from-busybox; trap 'exit 0' TERM; sleep 3600 & wait"],
            "log_path": "sh/0.log",
            "linux": {},
        })
        .to_string(),
    )
    .unwrap();
    let (pod_config, container_config) = (
        pod_config.to_str().unwrap(),
        container_config.to_str().unwrap(),
    );

    let images = node.crictl_ok(&socket, &["images"]);
    assert!(images.contains("localhost/busybox"), "{images}");
    // The store belongs to the running runtime: an import says so instead of racing it.
    let refused = node.import();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("is in use by another runtime"), "{stderr}");
    let pod = node
        .crictl_ok(&socket, &["runp", pod_config])
        .trim()
        .to_string();
    let container = node
        .crictl_ok(&socket, &["create", &pod, container_config, pod_config])
        .trim()
        .to_string();
    node.crictl_ok(&socket, &["start", &container]);
    let running = node.containers(&socket);
    assert_eq!(
        state_of(&running, &container).as_deref(),
        Some("CONTAINER_RUNNING"),
        "{running:?}"
    );
    let listed = node.crictl_ok(&socket, &["ps", "-q"]);
    assert_eq!(listed.trim(), container);

    let logs = wait_until(
        "the container's log line",
        START,
        node.log_path(),
        || async {
            node.crictl(&socket, &["logs", &container])
                .ok()
                .filter(|out| out.contains("hello-from-busybox"))
        },
    )
    .await;
    assert_eq!(logs.trim(), "hello-from-busybox");
    let exec = node.crictl_ok(&socket, &["exec", "-s", &container, "echo", "exec-ok"]);
    assert_eq!(exec.trim(), "exec-ok");

    node.crictl_ok(&socket, &["stop", "-t", "10", &container]);
    assert_eq!(
        state_of(&node.containers(&socket), &container).as_deref(),
        Some("CONTAINER_EXITED")
    );
    node.crictl_ok(&socket, &["rm", &container]);
    assert!(node.containers(&socket).is_empty());
    node.crictl_ok(&socket, &["stopp", &pod]);
    node.crictl_ok(&socket, &["rmp", &pod]);
    assert_eq!(node.crictl_ok(&socket, &["pods", "-q"]).trim(), "");
    node.stop(Signal::SIGTERM);
}

/// The pod's containers named `name`, from the runtime.
fn named<'a>(containers: &'a [Value], name: &str) -> Vec<&'a Value> {
    containers
        .iter()
        .filter(|c| c["metadata"]["name"] == name)
        .collect()
}

#[tokio::test]
async fn the_embedded_runtime_keeps_a_static_pod_across_a_kubelet_kill() {
    let mut node = Node::new("embedded", 2);
    let args = node.kubelet_args("builtin-e2e");
    let manifest = node.dir.join("manifests/web.yaml");
    std::fs::write(
        &manifest,
        busybox_pod(
            "web",
            "Always",
            &[("app", "echo started; trap 'exit 0' TERM; sleep 3600 & wait")],
            "",
        ),
    )
    .unwrap();
    node.start_kubelet(&args);
    let socket = node.kubelet_socket();
    node.wait_for_socket(&socket);
    assert!(
        node.log().contains("using the built-in container runtime"),
        "{}",
        node.log()
    );

    let first = wait_until("the static pod running", START, node.log_path(), || async {
        let containers = node.containers(&socket);
        named(&containers, "app")
            .into_iter()
            .find(|c| c["state"] == "CONTAINER_RUNNING")
            .cloned()
    })
    .await;
    let pod_name = "web-builtin-e2e";
    assert_eq!(first["labels"]["io.kubernetes.pod.name"], pod_name);
    let id = first["id"].as_str().unwrap().to_string();

    node.stop(Signal::SIGKILL);
    node.start_kubelet(&args);
    node.wait_for_socket(&socket);
    wait_until(
        "the restarted kubelet's start",
        START,
        node.log_path(),
        || async { (node.log().matches("kubelet started").count() >= 2).then_some(()) },
    )
    .await;
    // The restarted kubelet syncs the pod within its first seconds: a wrong decision would show.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let containers = node.containers(&socket);
    let apps = named(&containers, "app");
    assert_eq!(apps.len(), 1, "{containers:?}");
    let app = apps[0];
    assert_eq!(app["id"], id.as_str(), "the container was replaced");
    assert_eq!(app["state"], "CONTAINER_RUNNING");
    assert_eq!(app["metadata"]["attempt"].as_u64().unwrap_or(0), 0);
    assert_eq!(
        app["annotations"]["io.kubernetes.container.restartCount"],
        "0"
    );
    let pods = node.crictl_ok(&socket, &["pods", "-q"]);
    assert_eq!(pods.lines().count(), 1, "{pods}");

    // Deletion is creation in reverse: the kubelet removes the pod from the runtime.
    std::fs::remove_file(&manifest).unwrap();
    node.wait_until_empty(&socket, START).await;
    node.stop(Signal::SIGTERM);
}

#[tokio::test]
async fn a_container_exit_reaches_the_pod_status_through_container_events() {
    let mut node = Node::new("evented", 3);
    let port = free_port();
    let mut args = node.kubelet_args("builtin-ev");
    args.extend([
        "--address=127.0.0.1".to_string(),
        format!("--port={}", free_port()),
        format!("--read-only-port={port}"),
    ]);
    // The container exits when the test creates a file in this hostPath: no signal, no timing.
    let trigger = node.dir.join("trigger");
    std::fs::create_dir_all(&trigger).unwrap();
    std::fs::write(
        node.dir.join("manifests/quick.yaml"),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: quick\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 2\n  volumes:\n  - name: trigger\n    hostPath:\n      path: {}\n      type: Directory\n  containers:\n  - name: app\n    image: {BUSYBOX}\n    imagePullPolicy: IfNotPresent\n    command: [\"/bin/sh\", \"-c\", \"while [ ! -e /trigger/go ]; do sleep 0.1; done; exit 3\"]\n    volumeMounts:\n    - name: trigger\n      mountPath: /trigger\n",
            trigger.display()
        ),
    )
    .unwrap();
    node.start_kubelet(&args);
    let pod = "quick-builtin-ev";
    let running = wait_until(
        "the container running in /pods",
        START,
        node.log_path(),
        || async {
            served_container(port, pod, "app")
                .await
                .filter(|c| c["state"]["running"].is_object())
        },
    )
    .await;
    let id = running["containerID"]
        .as_str()
        .and_then(|id| id.split_once("://"))
        .map(|(_, id)| id.to_string())
        .expect("a container ID");
    assert!(
        node.log()
            .contains("following the runtime's container events"),
        "{}",
        node.log()
    );

    std::fs::write(trigger.join("go"), "").unwrap();
    let terminated = wait_until("the exit in /pods", START, node.log_path(), || async {
        served_container(port, pod, "app")
            .await
            .map(|c| c["state"]["terminated"].clone())
            .filter(|t| t.is_object())
    })
    .await;
    assert_eq!(terminated["exitCode"], 3, "{terminated}");
    // The exit came as the runtime's CONTAINER_STOPPED event, which woke the pod's worker.
    let log = node.log();
    let woken = log.lines().any(|l| {
        l.contains("pod woken by a container event")
            && l.contains(&id)
            && l.contains("CONTAINER_STOPPED_EVENT")
    });
    assert!(woken, "no event woke the pod for {id}:\n{log}");
    assert!(!log.contains("no container events"), "{log}");

    std::fs::remove_file(node.dir.join("manifests/quick.yaml")).unwrap();
    let socket = node.kubelet_socket();
    node.wait_until_empty(&socket, START).await;
    node.stop(Signal::SIGTERM);
}

#[tokio::test]
async fn the_summary_has_every_figure_of_a_pod_on_the_embedded_runtime() {
    let mut node = Node::new("summary", 4);
    let port = free_port();
    let mut args = node.kubelet_args("builtin-sum");
    args.extend(["--address=127.0.0.1".to_string(), format!("--port={port}")]);
    let config = node.dir.join("config.yaml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("authorization: {mode: AlwaysAllow}\nauthentication: {anonymous: {enabled: true}, webhook: {enabled: false}}\n");
    std::fs::write(&config, text).unwrap();
    let manifest = node.dir.join("manifests/web.yaml");
    std::fs::write(
        &manifest,
        busybox_pod(
            "web",
            "Always",
            &[("app", "trap 'exit 0' TERM; sleep 3600 & wait")],
            "",
        ),
    )
    .unwrap();
    node.start_kubelet(&args);
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    // Each figure's path: CRI ListContainerStats for the container's CPU (with the runtime's
    // own nano-cores), memory and writable layer; the pod's CPU and memory summed from them;
    // its network from /proc/PID/net/dev of the container's process (no sandbox process here).
    let pod = wait_until(
        "the pod's figures in /stats/summary",
        START,
        node.log_path(),
        || async {
            let body = client
                .get(format!("https://127.0.0.1:{port}/stats/summary"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let summary: Value = serde_json::from_str(&body).ok()?;
            let pod = summary["pods"]
                .as_array()?
                .iter()
                .find(|p| p["podRef"]["name"] == "web-builtin-sum")?
                .clone();
            let container = &pod["containers"][0];
            let complete = container["cpu"]["usageNanoCores"].is_u64()
                && container["memory"]["workingSetBytes"].as_u64() > Some(0)
                && pod["network"]["name"] == "eth0";
            complete.then_some(pod)
        },
    )
    .await;
    let container = &pod["containers"][0];
    assert!(
        container["cpu"]["usageCoreNanoSeconds"].as_u64() > Some(0),
        "{pod:#}"
    );
    for key in ["usageBytes", "rssBytes", "pageFaults", "majorPageFaults"] {
        assert!(container["memory"][key].is_u64(), "memory.{key}: {pod:#}");
    }
    assert!(container["rootfs"]["usedBytes"].is_u64(), "{pod:#}");
    assert!(container["rootfs"]["inodesUsed"].is_u64(), "{pod:#}");
    assert!(
        pod["cpu"]["usageCoreNanoSeconds"].as_u64() > Some(0),
        "{pod:#}"
    );
    assert!(
        pod["memory"]["workingSetBytes"].as_u64() > Some(0),
        "{pod:#}"
    );
    assert!(pod["network"]["rxBytes"].is_u64(), "{pod:#}");

    std::fs::remove_file(&manifest).unwrap();
    let socket = node.kubelet_socket();
    node.wait_until_empty(&socket, START).await;
    node.stop(Signal::SIGTERM);
}
