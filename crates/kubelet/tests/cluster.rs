//! End to end in cluster mode: the kubelet binary against an API server, driven with the real
//! kubectl, running pods on the private containerd. Every case runs twice: against the
//! project's test API server (`CASE::test_apiserver`) and against the upstream kube-apiserver
//! with Node,RBAC authorization and NodeRestriction (`CASE::kube_apiserver`).

mod support;

use kubelet_cri::RuntimeService;
use std::time::Duration;
use support::cluster::{Backend, Cluster, bound_pod, eventually};
use support::wait_for;

const START: Duration = Duration::from_secs(40);

crate::against_both_api_servers!(
    registers_the_node_renews_its_lease_and_runs_bound_pods,
    static_pods_get_mirror_pods_and_api_objects_reach_volumes,
    an_api_outage_and_a_forced_relist_restart_nothing,
    a_kubelet_joins_through_tls_bootstrap,
    a_node_keeps_its_status_lease_and_pods_current_as_the_node_authorizer_allows,
);

/// The node Lease's renewTime.
fn renew_time(cluster: &Cluster, node: &str) -> Option<String> {
    let lease = cluster.get("lease", node, "kube-node-lease")?;
    lease["spec"]["renewTime"].as_str().map(str::to_owned)
}

/// The Ready condition's lastHeartbeatTime and the node's capacity.
fn heartbeat(cluster: &Cluster, node: &str) -> Option<(String, serde_json::Value)> {
    let n = cluster.get("node", node, "default")?;
    let ready = n["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")?;
    Some((
        ready["lastHeartbeatTime"].as_str()?.to_owned(),
        n["status"]["capacity"].clone(),
    ))
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

async fn registers_the_node_renews_its_lease_and_runs_bound_pods(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-cluster";
    let mut k = cluster.kubelet(node).with_args(&[
        "--node-labels=tier=test",
        "--register-with-taints=dedicated=e2e:NoSchedule",
    ]);
    k.start();

    let n = eventually(
        "the node registered with a Ready condition",
        START,
        &k,
        || {
            let n = cluster.get("node", node, "default")?;
            let ready = n["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            ready.then_some(n)
        },
    )
    .await;
    let labels = &n["metadata"]["labels"];
    assert_eq!(labels["kubernetes.io/hostname"], node);
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["beta.kubernetes.io/os"], "linux");
    assert!(labels["kubernetes.io/arch"].is_string());
    assert_eq!(labels["tier"], "test");
    assert_eq!(
        n["metadata"]["annotations"]["volumes.kubernetes.io/controller-managed-attach-detach"],
        "true"
    );
    assert_eq!(n["spec"]["taints"][0]["key"], "dedicated");
    let status = &n["status"];
    for resource in ["cpu", "memory", "pods", "ephemeral-storage"] {
        assert!(
            status["capacity"][resource].is_string(),
            "capacity {resource}: {status}"
        );
        assert!(
            status["allocatable"][resource].is_string(),
            "allocatable {resource}"
        );
    }
    assert_eq!(status["capacity"]["pods"], "110");
    assert!(
        status["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["type"] == "InternalIP" && a["address"] == "127.0.0.1"),
        "{status}"
    );
    let info = &status["nodeInfo"];
    // NAME://VERSION of whichever runtime the run uses (containerd, or the built-in kubelet-rs).
    let runtime = k.cri().await.version().await.unwrap();
    assert_eq!(
        info["containerRuntimeVersion"],
        format!("{}://{}", runtime.runtime_name, runtime.runtime_version),
        "{info}"
    );
    for field in [
        "machineID",
        "bootID",
        "kernelVersion",
        "osImage",
        "kubeletVersion",
    ] {
        assert!(
            !info[field].as_str().unwrap_or("").is_empty(),
            "nodeInfo.{field}: {info}"
        );
    }
    assert_eq!(info["operatingSystem"], "linux");
    assert!(
        status["daemonEndpoints"]["kubeletEndpoint"]["Port"]
            .as_u64()
            .unwrap()
            > 0
    );
    for (kind, reason) in [
        ("MemoryPressure", "KubeletHasSufficientMemory"),
        ("DiskPressure", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "KubeletHasSufficientPID"),
        ("Ready", "KubeletReady"),
    ] {
        let c = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == kind)
            .unwrap_or_else(|| panic!("condition {kind}: {status}"));
        assert_eq!(c["reason"], reason, "{c}");
    }
    let starting = cluster
        .kubectl(&["get", "events", "-A", "-o", "json"])
        .unwrap();
    assert!(starting.contains("Starting kubelet."), "{starting}");

    // The Lease is owned by the Node and renewed.
    let renew = |c: &Cluster| {
        let lease = c.get("lease", node, "kube-node-lease")?;
        Some((
            lease["spec"]["renewTime"].as_str()?.to_owned(),
            lease["spec"]["leaseDurationSeconds"].clone(),
            lease["metadata"]["ownerReferences"][0]["kind"].clone(),
        ))
    };
    let (first, duration, owner) = eventually("the lease", START, &k, || renew(&cluster)).await;
    assert_eq!(duration, 40);
    assert_eq!(owner, "Node");
    eventually("a lease renewal", Duration::from_secs(25), &k, || {
        renew(&cluster).filter(|(t, _, _)| *t != first)
    })
    .await;

    // A pod bound to the node runs and is reported Running with its IP and ready container.
    let pod = format!("web-{node}");
    cluster.create(&bound_pod(
        &pod,
        node,
        "trap 'exit 0' TERM; sleep 3600 & wait",
        "",
    ));
    k.wait_running(&pod, &["app"], START).await;
    let status = eventually("kubectl shows the pod Running and ready", START, &k, || {
        let p = cluster.get("pod", &pod, "default")?;
        let s = &p["status"];
        (s["phase"] == "Running"
            && s["podIP"].is_string()
            && s["containerStatuses"][0]["ready"] == true)
            .then(|| s.clone())
    })
    .await;
    assert_eq!(status["hostIP"], "127.0.0.1");
    assert_eq!(status["qosClass"], "BestEffort");
    assert!(status["startTime"].is_string());
    let cs = &status["containerStatuses"][0];
    assert!(
        cs["containerID"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}://", runtime.runtime_name))
    );
    assert!(cs["imageID"].as_str().unwrap().contains("sha256:"));
    assert_eq!(cs["restartCount"], 0);
    assert!(cs["state"]["running"]["startedAt"].is_string());
    let types: Vec<&str> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["type"].as_str())
        .collect();
    for t in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    ] {
        assert!(types.contains(&t), "{types:?}");
    }

    // A pod a scheduler binds through pods/binding runs; a pod is bound once, and an update may
    // change only what upstream lets it change.
    let scheduled = format!("scheduled-{node}");
    cluster.create(&bound_pod(&scheduled, "", "sleep 3600", ""));
    let binding_path = format!("/api/v1/namespaces/default/pods/{scheduled}/binding");
    let bind = |target: &str| {
        let binding = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": scheduled},
            "target": {"kind": "Node", "name": target},
        });
        cluster.kubectl_stdin(
            &["create", "--raw", &binding_path, "-f", "-"],
            Some(&binding.to_string()),
        )
    };
    bind(node).unwrap();
    k.wait_running(&scheduled, &["app"], START).await;
    let p = cluster.get("pod", &scheduled, "default").unwrap();
    assert!(
        p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "PodScheduled" && c["status"] == "True"),
        "{p}"
    );
    let refused = bind("elsewhere").unwrap_err();
    assert_eq!(
        refused.trim_end(),
        format!(
            "Error from server (Conflict): Operation cannot be fulfilled on pods/binding \"{scheduled}\": pod {scheduled} is already assigned to node \"{node}\""
        )
    );
    let refused = cluster
        .kubectl(&[
            "patch",
            "pod",
            &scheduled,
            "--type=merge",
            "-p",
            r#"{"spec":{"restartPolicy":"Never"}}"#,
        ])
        .unwrap_err();
    assert!(
        refused.starts_with(&format!(
            "The Pod \"{scheduled}\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
        )),
        "{refused}"
    );
    cluster
        .kubectl(&["delete", "pod", &scheduled, "--wait=false"])
        .unwrap();

    // runtimeClassName picks the sandbox's runtime handler through the RuntimeClass; a handler
    // the runtime does not have leaves the pod waiting with upstream's event.
    cluster.create(
        "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: plain\nhandler: runc\n---\n\
         apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: exotic\nhandler: nope\n",
    );
    let classed = format!("classed-{node}");
    let exotic = format!("exotic-{node}");
    for (name, class) in [(&classed, "plain"), (&exotic, "exotic")] {
        cluster.create(&bound_pod(
            name,
            node,
            "sleep 3600",
            &format!("  runtimeClassName: {class}\n"),
        ));
    }
    k.wait_running(&classed, &["app"], START).await;
    let sandboxes = k.sandboxes(&classed).await;
    assert_eq!(sandboxes.len(), 1);
    assert_eq!(sandboxes[0].runtime_handler, "runc");
    let event = eventually("a FailedCreatePodSandBox event", START, &k, || {
        cluster.event(&exotic, "FailedCreatePodSandBox")
    })
    .await;
    assert_eq!(event["type"], "Warning");
    let message = event["message"].as_str().unwrap();
    assert!(
        message.starts_with("Failed to create pod sandbox: ")
            && message.contains("no runtime for \"nope\" is configured"),
        "{message}"
    );
    let waiting = cluster.get("pod", &exotic, "default").unwrap();
    assert_eq!(waiting["status"]["phase"], "Pending", "{waiting}");
    assert!(k.sandboxes(&exotic).await.is_empty());
    for name in [&classed, &exotic] {
        cluster
            .kubectl(&["delete", "pod", name, "--wait=false"])
            .unwrap();
    }

    // A pod asking for more CPU than the node has is rejected with OutOfcpu, nothing started.
    let big = format!("big-{node}");
    cluster.create(&bound_pod(&big, node, "sleep 3600", "").replace(
        "    command:",
        "    resources:\n      requests:\n        cpu: \"1000\"\n    command:",
    ));
    let rejected = eventually("the big pod Failed", START, &k, || {
        let p = cluster.get("pod", &big, "default")?;
        (p["status"]["phase"] == "Failed").then(|| p["status"].clone())
    })
    .await;
    assert_eq!(rejected["reason"], "OutOfcpu", "{rejected}");
    assert!(k.sandboxes(&big).await.is_empty());

    // kubectl delete: the kubelet stops the pod, then removes it from the API for good.
    cluster
        .kubectl(&["delete", "pod", &pod, "--wait=false"])
        .unwrap();
    eventually("the pod gone from the API", START, &k, || {
        cluster.get("pod", &pod, "default").is_none().then_some(())
    })
    .await;
    wait_for("the pod gone from the runtime", START, &k, || async {
        k.sandboxes(&pod).await.is_empty().then_some(())
    })
    .await;
    k.cleanup().await;
}

fn mounts_static_pod(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
"#,
        image = support::BUSYBOX
    )
}

async fn static_pods_get_mirror_pods_and_api_objects_reach_volumes(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-mirror";
    let mut k = cluster.kubelet(node).with_config("syncFrequency: 3s\n");
    k.write_manifest("static.yaml", &mounts_static_pod("static"));
    k.start();

    let mirror_name = k.pod_name("static");
    let mirror = eventually("the mirror pod", START, &k, || {
        cluster.get("pod", &mirror_name, "default")
    })
    .await;
    let annotations = &mirror["metadata"]["annotations"];
    assert!(
        annotations["kubernetes.io/config.mirror"].is_string(),
        "{annotations}"
    );
    assert_eq!(annotations["kubernetes.io/config.source"], "file");
    let owner = &mirror["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Node");
    assert_eq!(owner["name"], node);
    let first_uid = mirror["metadata"]["uid"].as_str().unwrap().to_owned();
    eventually("the mirror pod reports Running", START, &k, || {
        let p = cluster.get("pod", &mirror_name, "default")?;
        (p["status"]["phase"] == "Running").then_some(())
    })
    .await;
    let static_container = k.wait_running(&mirror_name, &["app"], START).await["app"]
        .id
        .clone();

    // Deleting the mirror brings it back; the static pod itself is untouched.
    cluster
        .kubectl(&["delete", "pod", &mirror_name, "--wait=false"])
        .unwrap();
    eventually("a new mirror pod", START, &k, || {
        let p = cluster.get("pod", &mirror_name, "default")?;
        (p["metadata"]["uid"] != first_uid.as_str() && p["metadata"]["deletionTimestamp"].is_null())
            .then_some(())
    })
    .await;
    assert_eq!(k.running(&mirror_name).await["app"].id, static_container);

    // A ConfigMap volume follows updates; a Secret volume lives on tmpfs.
    cluster.create(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  color: blue\n",
    );
    cluster.create(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: default\nstringData:\n  password: hunter2\n",
    );
    let pod = format!("vols-{node}");
    let spec = "  volumes:\n  - name: settings\n    configMap:\n      name: settings\n  - name: creds\n    secret:\n      secretName: creds\n";
    cluster.create(
        &bound_pod(&pod, node, "trap 'exit 0' TERM; sleep 3600 & wait", spec).replace(
            "    command:",
            "    volumeMounts:\n    - {name: settings, mountPath: /etc/settings}\n    - {name: creds, mountPath: /etc/creds}\n    command:",
        ),
    );
    k.wait_running(&pod, &["app"], START).await;
    let uid = k.pod_uid(&pod).await.unwrap();
    let volumes = k.dir.join(format!("root/pods/{uid}/volumes"));
    let color = volumes.join("kubernetes.io~configmap/settings/color");
    assert_eq!(std::fs::read_to_string(&color).unwrap(), "blue");
    let secret_dir = volumes.join("kubernetes.io~secret/creds");
    assert_eq!(
        std::fs::read_to_string(secret_dir.join("password")).unwrap(),
        "hunter2"
    );
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let secret_mount = mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some(secret_dir.to_str().unwrap()))
        .unwrap_or_else(|| panic!("no mount at {}", secret_dir.display()));
    assert!(secret_mount.contains(" - tmpfs "), "{secret_mount}");

    cluster
        .kubectl(&[
            "patch",
            "configmap",
            "settings",
            "--type=merge",
            "-p",
            r#"{"data":{"color":"green"}}"#,
        ])
        .unwrap();
    eventually("the ConfigMap update in the volume", START, &k, || {
        (std::fs::read_to_string(&color).ok()? == "green").then_some(())
    })
    .await;

    // Removing the static pod removes its mirror.
    k.remove_manifest("static.yaml");
    eventually("the mirror pod removed", START, &k, || {
        cluster
            .get("pod", &mirror_name, "default")
            .is_none()
            .then_some(())
    })
    .await;
    k.cleanup().await;
}

async fn an_api_outage_and_a_forced_relist_restart_nothing(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-outage";
    let mut k = cluster.kubelet(node);
    k.start();
    let pod = format!("steady-{node}");
    cluster.create(&bound_pod(
        &pod,
        node,
        "trap 'exit 0' TERM; sleep 3600 & wait",
        "",
    ));
    let before = k.wait_running(&pod, &["app"], START).await["app"]
        .id
        .clone();
    eventually("the pod Running in the API", START, &k, || {
        let p = cluster.get("pod", &pod, "default")?;
        (p["status"]["phase"] == "Running").then_some(())
    })
    .await;

    // 30 s without an API server.
    let lease_before = eventually("the lease", START, &k, || renew_time(&cluster, node)).await;
    cluster.stop_api();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        k.running(&pod).await["app"].id,
        before,
        "the container was restarted"
    );
    cluster.restart_api();
    eventually("the lease renewed after the outage", START, &k, || {
        let now = renew_time(&cluster, node)?;
        (now != lease_before).then_some(())
    })
    .await;

    // A pod created during recovery still arrives, and statuses catch up.
    let late = format!("late-{node}");
    cluster.create(&bound_pod(
        &late,
        node,
        "trap 'exit 0' TERM; sleep 3600 & wait",
        "",
    ));
    eventually("the late pod Running in the API", START, &k, || {
        let p = cluster.get("pod", &late, "default")?;
        (p["status"]["phase"] == "Running").then_some(())
    })
    .await;

    // A forced 410 Gone: the watch resumes from a compacted resourceVersion and relists.
    cluster.compact();
    cluster.stop_api();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.restart_api();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let p = cluster.get("pod", &pod, "default").unwrap();
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
    assert_eq!(
        k.running(&pod).await["app"].id,
        before,
        "a relist restarted the container"
    );
    assert_eq!(
        k.containers(&pod).await.len(),
        1,
        "a relist duplicated the container"
    );
    assert_eq!(
        k.sandboxes(&pod).await.len(),
        1,
        "a relist duplicated the sandbox"
    );
    k.cleanup().await;
}

async fn a_kubelet_joins_through_tls_bootstrap(backend: Backend) {
    let _serial = support::serial().await;
    // No controller manager on the real back end: the harness approves with kubectl and signs
    // with the cluster CA, writing status.certificate through the API.
    let cluster = Cluster::signing_csrs(backend);
    let node = "e2e-bootstrap";
    let k = support::Kubelet::new(node);
    let bootstrap = k.dir.join("bootstrap.kubeconfig");
    cluster.bootstrap_kubeconfig(&bootstrap, "abcdef.0123456789abcdef");
    let kubeconfig = k.dir.join("kubelet.kubeconfig");
    let port = support::free_port();
    let mut k = k.with_args(&[
        &format!("--bootstrap-kubeconfig={}", bootstrap.display()),
        &format!("--kubeconfig={}", kubeconfig.display()),
        &format!("--port={port}"),
        "--node-ip=127.0.0.1",
    ]);
    k.start();
    let csr = eventually("a CSR from the kubelet", START, &k, || {
        let list = json(&cluster.kubectl(&["get", "csr", "-o", "json"]).ok()?);
        list["items"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(
        csr["spec"]["signerName"],
        "kubernetes.io/kube-apiserver-client-kubelet"
    );
    eventually(
        "the node registered with its own certificate",
        START,
        &k,
        || cluster.get("node", node, "default").map(|_| ()),
    )
    .await;
    assert!(kubeconfig.exists());
    assert!(k.dir.join("pki/kubelet-client-current.pem").exists());
    let users: Vec<String> = cluster.requests().into_iter().map(|r| r.user).collect();
    assert!(
        users.iter().any(|u| u == &format!("system:node:{node}")),
        "{users:?}"
    );
    k.cleanup().await;
}

/// Issue 15, item 1: with a node's own credentials (system:node:NAME in system:nodes), under the
/// Node authorizer and NodeRestriction, every request the node loop, the lease and the pod
/// status manager make is allowed: the node registers, its status is posted again and again,
/// its Lease is renewed, and a bound pod's status reaches the API.
async fn a_node_keeps_its_status_lease_and_pods_current_as_the_node_authorizer_allows(
    backend: Backend,
) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-authz";
    let mut k = cluster
        .kubelet(node)
        .with_config("nodeStatusUpdateFrequency: 1s\nnodeStatusReportFrequency: 3s\n");
    k.start();

    let (first, capacity) = eventually("the node registered Ready", START, &k, || {
        heartbeat(&cluster, node)
    })
    .await;
    for resource in ["cpu", "memory", "pods", "ephemeral-storage"] {
        assert!(
            capacity[resource].is_string(),
            "capacity {resource}: {capacity}"
        );
    }
    let mut beats = vec![first];
    while beats.len() < 3 {
        let last = beats.last().unwrap().clone();
        let (next, _) = eventually("the next status heartbeat", START, &k, || {
            heartbeat(&cluster, node).filter(|(t, _)| *t != last)
        })
        .await;
        beats.push(next);
    }
    let renewed = eventually("the lease", START, &k, || renew_time(&cluster, node)).await;
    eventually("a lease renewal", Duration::from_secs(25), &k, || {
        renew_time(&cluster, node).filter(|t| *t != renewed)
    })
    .await;

    let pod = format!("authz-{node}");
    cluster.create(&bound_pod(
        &pod,
        node,
        "trap 'exit 0' TERM; sleep 3600 & wait",
        "",
    ));
    eventually("the pod Running and ready in the API", START, &k, || {
        let p = cluster.get("pod", &pod, "default")?;
        let s = &p["status"];
        (s["phase"] == "Running" && s["containerStatuses"][0]["ready"] == true).then_some(())
    })
    .await;

    let user = format!("system:node:{node}");
    let requests: Vec<_> = cluster
        .requests()
        .into_iter()
        .filter(|r| r.user == user)
        .collect();
    let status_writes = requests
        .iter()
        .filter(|r| r.uri.contains(&format!("/nodes/{node}/status")) && r.status < 300)
        .count();
    assert!(status_writes >= 2, "{requests:#?}");
    let refused: Vec<_> = requests.iter().filter(|r| r.status == 403).collect();
    assert!(
        refused.is_empty(),
        "refused requests of the node: {refused:#?}"
    );
    cluster
        .kubectl(&["delete", "pod", &pod, "--wait=false"])
        .unwrap();
    eventually("the pod gone from the API", START, &k, || {
        cluster.get("pod", &pod, "default").is_none().then_some(())
    })
    .await;
    k.cleanup().await;
}
