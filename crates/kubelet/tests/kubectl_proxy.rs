//! End to end: kubectl logs, exec and port-forward reach the kubelet through the API server's
//! proxy, and the kubelet port authenticates and authorizes through the API server; against
//! the project's test API server and the upstream kube-apiserver.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::cluster::{Backend, Cluster, bound_pod, eventually, host_ip};
use support::{free_port, wait_for};

const START: Duration = Duration::from_secs(40);

/// A pod with a logging container ("app", also serving HTTP on 8080) and one that crashes
/// once a second ("crash"), so that it has a previous instance.
fn pod(name: &str, node: &str) -> String {
    let app = "mkdir -p /www; echo hello-web > /www/index.html; httpd -p 8080 -h /www; \
               echo line 1; echo line 2; echo line 3; i=0; \
               trap 'exit 0' TERM; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done";
    bound_pod(name, node, app, "").replace(
        "    command:",
        "    ports:\n    - containerPort: 8080\n    command:",
    ) + &format!(
        "  - name: crash\n    image: {image}\n    imagePullPolicy: IfNotPresent\n    command: [\"/bin/sh\", \"-c\", \"echo crash-run $(date +%s%N); sleep 1; exit 1\"]\n",
        image = support::BUSYBOX
    )
}

crate::against_both_api_servers!(kubectl_logs_exec_and_port_forward_through_the_api_server);

async fn kubectl_logs_exec_and_port_forward_through_the_api_server(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-kubectl";
    let ca = cluster.kubeconfig.with_file_name("ca.pem");
    cluster.write_ca(&ca);
    let mut k = cluster
        .kubelet_at(node, &host_ip())
        .with_args(&[&format!("--client-ca-file={}", ca.display())])
        .with_config("containerLogMaxSize: 2Ki\ncontainerLogMaxFiles: 3\n");
    k.start();
    let name = format!("tools-{node}");
    cluster.create(&pod(&name, node));
    k.wait_running(&name, &["app"], START).await;
    eventually("the pod Running in the API", START, &k, || {
        let p = cluster.get("pod", &name, "default")?;
        (p["status"]["phase"] == "Running").then_some(())
    })
    .await;

    // kubectl logs: tail, limit-bytes, timestamps.
    let logs = |args: &[&str]| {
        let mut all = vec!["logs", name.as_str()];
        all.extend_from_slice(args);
        cluster.kubectl(&all)
    };
    let head = eventually("the first lines", START, &k, || {
        logs(&["-c", "app"]).ok().filter(|l| l.contains("line 3"))
    })
    .await;
    assert!(head.starts_with("line 1\nline 2\nline 3\n"), "{head}");
    let tail = logs(&["-c", "app", "--tail=1"]).unwrap();
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert_eq!(logs(&["-c", "app", "--limit-bytes=6"]).unwrap(), "line 1");
    let stamped = logs(&["-c", "app", "--timestamps", "--tail=1"]).unwrap();
    let (stamp, line) = stamped.trim_end().split_once(' ').unwrap();
    assert!(
        stamp.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
        "{stamped}"
    );
    assert!(line.starts_with("tick "), "{stamped}");

    // --previous after a restart of the crashing container.
    let previous = eventually("a previous crash instance", START, &k, || {
        logs(&["-c", "crash", "--previous"])
            .ok()
            .filter(|l| l.starts_with("crash-run"))
    })
    .await;
    let current = logs(&["-c", "crash"]).unwrap_or_default();
    assert_ne!(previous, current);

    // --follow across rotations: the ticks arrive in order, none missing.
    let mut follow = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", cluster.kubeconfig.display()))
        .args(["logs", "-f", &name, "-c", "app", "--tail=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        let mut ticks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("tick ") {
                ticks.push(n.parse::<u64>().unwrap());
            }
            if ticks.len() >= 120 {
                break;
            }
        }
        ticks
    });
    let rotated = k.dir.join("pod-logs");
    wait_for(
        "a rotated log file",
        Duration::from_secs(60),
        &k,
        || async {
            let found = walk(&rotated).into_iter().any(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("0.log."))
            });
            found.then_some(())
        },
    )
    .await;
    let ticks = tokio::task::spawn_blocking(move || lines.join().unwrap())
        .await
        .unwrap();
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(ticks.len() >= 120, "follow stopped early: {ticks:?}");
    assert!(
        ticks.windows(2).all(|w| w[1] == w[0] + 1),
        "a followed line was lost or repeated: {ticks:?}"
    );

    // kubectl exec over SPDY: stdin reaches the command, and a tty is a tty.
    let mut exec = Command::new("kubectl")
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .arg(format!("--kubeconfig={}", cluster.kubeconfig.display()))
        .args([
            "exec",
            "-i",
            &name,
            "-c",
            "app",
            "--",
            "sh",
            "-c",
            "tr a-z A-Z",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = exec.stdin.take().unwrap();
        stdin.write_all(b"hello through spdy\n").unwrap();
    }
    let out = exec.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO THROUGH SPDY\n");
    let tty = Command::new("script")
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .args([
            "-qec",
            &format!(
                "kubectl --kubeconfig={} exec -ti {name} -c app -- tty",
                cluster.kubeconfig.display()
            ),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    let tty_out = String::from_utf8_lossy(&tty.stdout);
    assert!(
        tty_out.contains("/dev/pts/"),
        "{tty_out} {}",
        String::from_utf8_lossy(&tty.stderr)
    );
    let code = cluster
        .kubectl(&["exec", &name, "-c", "app", "--", "sh", "-c", "exit 3"])
        .unwrap_err();
    assert!(code.contains("exit code 3"), "{code}");

    // kubectl port-forward to busybox httpd in the pod.
    let local = free_port();
    let mut forward = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", cluster.kubeconfig.display()))
        .args([
            "port-forward",
            &format!("pod/{name}"),
            &format!("{local}:8080"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let page = wait_for("a page through port-forward", START, &k, || async {
        support::http_get(local, "/index.html")
            .await
            .filter(|(code, _)| *code == 200)
    })
    .await;
    let _ = forward.kill();
    let _ = forward.wait();
    assert_eq!(page.1, "hello-web\n");

    // /metrics and /stats/summary through the node proxy; the metrics parse as Prometheus text.
    let raw = cluster
        .kubectl(&[
            "get",
            "--raw",
            &format!("/api/v1/nodes/{node}/proxy/metrics"),
        ])
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(raw.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("/metrics is not Prometheus text: {e}\n{raw}"));
    let names: std::collections::BTreeSet<&str> =
        scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for name in [
        "kubelet_pod_start_duration_seconds",
        "kubelet_pod_start_sli_duration_seconds",
        "kubelet_pod_worker_duration_seconds",
        "kubelet_running_pods",
        "kubelet_running_containers",
        "kubelet_runtime_operations_total",
        "kubelet_runtime_operations_duration_seconds",
        "kubelet_pleg_relist_duration_seconds",
        "kubelet_pleg_relist_interval_seconds",
        "kubelet_node_name",
        "kubelet_started_pods_total",
        "process_resident_memory_bytes",
    ] {
        assert!(
            names.contains(name),
            "{name} missing from /metrics: {names:?}"
        );
    }
    let started = scrape
        .samples
        .iter()
        .find(|s| s.metric == "kubelet_started_pods_total")
        .unwrap();
    assert!(
        matches!(started.value, prometheus_parse::Value::Counter(v) if v >= 1.0),
        "{started:?}"
    );
    let summary: serde_json::Value = serde_json::from_str(
        &cluster
            .kubectl(&[
                "get",
                "--raw",
                &format!("/api/v1/nodes/{node}/proxy/stats/summary"),
            ])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["node"]["nodeName"], node);
    let pod_stats = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} in {summary}"));
    assert!(pod_stats["memory"]["workingSetBytes"].as_u64().unwrap() > 0);

    // The kubelet port itself: a token the API server knows passes; a denied review is 403.
    let (_, viewer) = cluster.kubelet_api_user("viewer", true);
    let port = k.port();
    let (code, _) = https_get(port, "/pods", Some(&viewer)).await;
    assert_eq!(code, 200);
    let (code, _) = https_get(port, "/pods", None).await;
    assert_eq!(code, 401);
    let (nosy_user, nosy) = cluster.kubelet_api_user("nosy", false);
    let (code, body) = https_get(port, "/stats/summary", Some(&nosy)).await;
    assert_eq!(code, 403);
    assert_eq!(
        body,
        format!("Forbidden (user={nosy_user}, verb=get, resource=nodes, subresource=stats)")
    );
    k.cleanup().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// GET on the kubelet's HTTPS port without verifying its self-signed certificate.
async fn https_get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let mut request = client.get(format!("https://127.0.0.1:{port}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let code = response.status().as_u16();
    (code, response.text().await.unwrap())
}
