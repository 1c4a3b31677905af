//! End to end on the real containerd: probes, lifecycle hooks, sidecars, termination messages
//! and graceful node shutdown, observed through CRI and the read-only port.

mod support;

use kubelet_cri::RuntimeService;
use std::time::Duration;
use support::{BUSYBOX, Kubelet, free_port, served_container, served_status, wait_for};

const WAIT: Duration = Duration::from_secs(40);
const FOREVER: &str = "trap 'exit 0' TERM; sleep 3600 & wait";

fn kubelet(node: &str) -> (Kubelet, u16) {
    let port = free_port();
    let k =
        Kubelet::new(node).with_args(&["--address=127.0.0.1", &format!("--read-only-port={port}")]);
    (k, port)
}

async fn exec(k: &Kubelet, full_name: &str, container: &str, script: &str) {
    let id = k.running(full_name).await[container].id.clone();
    let cmd = vec!["/bin/sh".into(), "-c".into(), script.into()];
    let out = k
        .cri()
        .await
        .exec_sync(&id, cmd, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        out.exit_code,
        0,
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_readiness_probe_follows_a_file() {
    let _serial = support::serial().await;
    let (mut k, port) = kubelet("e2e-ready");
    k.write_manifest(
        "ready.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: ready}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["/bin/sh", "-c", "{FOREVER}"]
    readinessProbe:
      exec: {{command: ["cat", "/tmp/ready"]}}
      periodSeconds: 1
      failureThreshold: 1
"#
        ),
    );
    k.start();
    let name = k.pod_name("ready");
    k.wait_running(&name, &["app"], WAIT).await;
    let ready = |want: bool| {
        let name = name.clone();
        async move {
            let c = served_container(port, &name, "app").await?;
            (c["ready"] == want).then_some(())
        }
    };
    wait_for("not ready without the file", WAIT, &k, || ready(false)).await;
    exec(&k, &name, "app", "touch /tmp/ready").await;
    wait_for("ready once the file exists", WAIT, &k, || ready(true)).await;
    let status = served_status(port, &name).await.unwrap();
    let cond = |t: &str| {
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(cond("Ready"), "True");
    assert_eq!(cond("ContainersReady"), "True");
    exec(&k, &name, "app", "rm /tmp/ready").await;
    wait_for("not ready again", WAIT, &k, || ready(false)).await;
    assert_eq!(
        served_container(port, &name, "app").await.unwrap()["restartCount"],
        0,
        "readiness never restarts"
    );
    k.cleanup().await;
}

#[tokio::test]
async fn a_failing_liveness_probe_restarts_the_container() {
    let _serial = support::serial().await;
    let (mut k, port) = kubelet("e2e-live");
    k.write_manifest(
        "live.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: live}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["/bin/sh", "-c", "touch /tmp/alive; trap 'exit 0' TERM; sleep 3600 & wait"]
    livenessProbe:
      exec: {{command: ["cat", "/tmp/alive"]}}
      periodSeconds: 1
      failureThreshold: 2
"#
        ),
    );
    k.start();
    let name = k.pod_name("live");
    let first = k.wait_running(&name, &["app"], WAIT).await["app"]
        .id
        .clone();
    exec(&k, &name, "app", "rm /tmp/alive").await;
    wait_for("a restart after the liveness failure", WAIT, &k, || async {
        let c = served_container(port, &name, "app").await?;
        (c["restartCount"].as_i64()? >= 1 && c["state"]["running"].is_object()).then_some(())
    })
    .await;
    assert_ne!(k.running(&name).await["app"].id, first);
    assert!(
        k.log().contains("failed liveness probe"),
        "the kill names the probe"
    );
    k.cleanup().await;
}

#[tokio::test]
async fn http_get_and_tcp_socket_probes_reach_busybox_httpd() {
    let _serial = support::serial().await;
    let (mut k, port) = kubelet("e2e-http");
    k.write_manifest(
        "web.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: httpd
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["/bin/sh", "-c", "mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p 8080 -h /www"]
    ports: [{{name: http, containerPort: 8080}}]
    readinessProbe:
      httpGet: {{path: /healthz, port: http}}
      periodSeconds: 1
    livenessProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
      failureThreshold: 1
"#
        ),
    );
    k.start();
    let name = k.pod_name("web");
    wait_for("ready through httpGet", WAIT, &k, || async {
        let c = served_container(port, &name, "httpd").await?;
        (c["ready"] == true).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c = served_container(port, &name, "httpd").await.unwrap();
    assert_eq!(
        c["restartCount"], 0,
        "the tcpSocket liveness probe passes: {c}"
    );
    assert_eq!(c["ready"], true);
    k.cleanup().await;
}

#[tokio::test]
async fn post_start_writes_a_file_and_pre_stop_delays_the_stop() {
    let _serial = support::serial().await;
    let (mut k, port) = kubelet("e2e-hooks");
    k.write_manifest(
        "hooks.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: hooks}}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: app
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["/bin/sh", "-c", "while [ ! -f /tmp/hook ]; do sleep 0.1; done; echo read-$(cat /tmp/hook); {FOREVER}"]
    lifecycle:
      postStart:
        exec: {{command: ["/bin/sh", "-c", "echo from-post-start > /tmp/hook"]}}
      preStop:
        sleep: {{seconds: 3}}
"#
        ),
    );
    k.start();
    let name = k.pod_name("hooks");
    k.wait_running(&name, &["app"], WAIT).await;
    let uid = k.pod_uid(&name).await.unwrap();
    let log = k
        .dir
        .join(format!("pod-logs/default_{name}_{uid}/app/0.log"));
    wait_for("the container read the hook's file", WAIT, &k, || async {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("read-from-post-start"))
    })
    .await;
    assert!(served_status(port, &name).await.is_some());

    let removed = tokio::time::Instant::now();
    k.remove_manifest("hooks.yaml");
    wait_for("the container stopped", WAIT, &k, || async {
        k.running(&name).await.is_empty().then_some(())
    })
    .await;
    let took = removed.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "the preStop sleep comes first: {took:?}"
    );
    assert!(
        took < Duration::from_secs(9),
        "the container stops on TERM right after: {took:?}"
    );
    k.cleanup().await;
}

#[tokio::test]
async fn sidecars_start_before_and_stop_after_the_main_container_in_order() {
    let _serial = support::serial().await;
    let (mut k, _port) = kubelet("e2e-sidecar");
    let shared = k.dir.join("order");
    std::fs::create_dir_all(&shared).unwrap();
    let role = |n: &str| {
        format!(
            "echo start-{n} >> /order/log; trap 'echo stop-{n} >> /order/log; exit 0' TERM; sleep 3600 & wait"
        )
    };
    k.write_manifest(
        "side.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: side}}
spec:
  terminationGracePeriodSeconds: 10
  volumes: [{{name: order, hostPath: {{path: {}, type: Directory}}}}]
  initContainers:
  - {{name: s1, image: {BUSYBOX}, imagePullPolicy: IfNotPresent, restartPolicy: Always, command: ["/bin/sh", "-c", "{}"], volumeMounts: [{{name: order, mountPath: /order}}]}}
  - {{name: s2, image: {BUSYBOX}, imagePullPolicy: IfNotPresent, restartPolicy: Always, command: ["/bin/sh", "-c", "{}"], volumeMounts: [{{name: order, mountPath: /order}}]}}
  containers:
  - {{name: main, image: {BUSYBOX}, imagePullPolicy: IfNotPresent, command: ["/bin/sh", "-c", "{}"], volumeMounts: [{{name: order, mountPath: /order}}]}}
"#,
            shared.display(),
            role("s1"),
            role("s2"),
            role("main")
        ),
    );
    k.start();
    let name = k.pod_name("side");
    k.wait_running(&name, &["s1", "s2", "main"], WAIT).await;
    k.remove_manifest("side.yaml");
    wait_for("the pod gone", WAIT, &k, || async {
        k.containers(&name).await.is_empty().then_some(())
    })
    .await;
    let order = std::fs::read_to_string(shared.join("log")).unwrap();
    let lines: Vec<&str> = order.lines().collect();
    assert_eq!(
        lines,
        [
            "start-s1",
            "start-s2",
            "start-main",
            "stop-main",
            "stop-s2",
            "stop-s1"
        ],
        "{order}"
    );
    k.cleanup().await;
}

#[tokio::test]
async fn termination_messages_come_from_the_file_or_the_logs() {
    let _serial = support::serial().await;
    let (mut k, port) = kubelet("e2e-message");
    k.write_manifest(
        "msg.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: msg}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
  - name: file
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["/bin/sh", "-c", "echo bye from the file > /dev/termination-log; exit 3"]
  - name: logs
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    terminationMessagePolicy: FallbackToLogsOnError
    command: ["/bin/sh", "-c", "echo last words; exit 4"]
"#
        ),
    );
    k.start();
    let name = k.pod_name("msg");
    let status = wait_for("the pod Failed", WAIT, &k, || async {
        let s = served_status(port, &name).await?;
        (s["phase"] == "Failed").then_some(s)
    })
    .await;
    let term = |c: &str| {
        status["containerStatuses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == c)
            .unwrap()["state"]["terminated"]
            .clone()
    };
    assert_eq!(term("file")["message"], "bye from the file\n");
    assert_eq!(term("file")["exitCode"], 3);
    assert_eq!(term("file")["reason"], "Error");
    assert_eq!(term("logs")["message"], "last words\n");
    assert_eq!(term("logs")["exitCode"], 4);
    k.cleanup().await;
}

#[tokio::test]
async fn node_shutdown_stops_pods_critical_last_and_sigterm_stops_none() {
    use kubelet_testkit::logind::{BusDaemon, FakeHost};
    let _serial = support::serial().await;
    let bus = BusDaemon::start();
    let conf = tempfile::tempdir().unwrap();
    let mut logind =
        FakeHost::serve(&bus.address, Duration::from_secs(60), conf.path(), false).await;
    let (k, port) = kubelet("e2e-shutdown");
    let mut k = k
        .with_env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .with_config("shutdownGracePeriod: 20s\nshutdownGracePeriodCriticalPods: 10s\n");
    let pod = |name: &str, class: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 5\n{class}  containers:\n  - {{name: app, image: {BUSYBOX}, imagePullPolicy: IfNotPresent, command: [\"/bin/sh\", \"-c\", \"{FOREVER}\"]}}\n"
        )
    };
    k.write_manifest("plain.yaml", &pod("plain", ""));
    k.write_manifest(
        "critical.yaml",
        &pod("critical", "  priorityClassName: system-node-critical\n"),
    );
    k.start();
    let (plain, critical) = (k.pod_name("plain"), k.pod_name("critical"));
    k.wait_running(&plain, &["app"], WAIT).await;
    k.wait_running(&critical, &["app"], WAIT).await;
    wait_for("the inhibitor lock", WAIT, &k, || async {
        (!logind.inhibits().is_empty()).then_some(())
    })
    .await;

    // A SIGTERM stops the kubelet alone.
    k.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        k.running(&plain).await.contains_key("app")
            && k.running(&critical).await.contains_key("app")
    );
    k.start();
    wait_for("the inhibitor lock again", WAIT, &k, || async {
        (logind.inhibits().len() >= 2).then_some(())
    })
    .await;

    logind.prepare_for_shutdown(true).await;
    wait_for("both pods stopped", WAIT, &k, || async {
        (k.running(&plain).await.is_empty() && k.running(&critical).await.is_empty()).then_some(())
    })
    .await;
    let cri = k.cri().await;
    let finished = |full: String| {
        let cri = cri.clone();
        let k = &k;
        async move {
            let c = k.containers(&full).await.remove(0);
            cri.container_status(&c.id).await.unwrap().finished_at
        }
    };
    let (p, c) = (
        finished(plain.clone()).await,
        finished(critical.clone()).await,
    );
    assert!(
        p <= c,
        "ordinary pods stop before critical ones: {p} vs {c}"
    );
    tokio::time::timeout(WAIT, logind.next_release())
        .await
        .expect("the lock is released after the pods stop");
    for name in [&plain, &critical] {
        let s = served_status(port, name).await.unwrap();
        assert_eq!(s["phase"], "Failed", "{s}");
        assert_eq!(s["reason"], "Terminated", "{s}");
        assert!(
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == "DisruptionTarget"),
            "{s}"
        );
    }
    k.cleanup().await;
}
