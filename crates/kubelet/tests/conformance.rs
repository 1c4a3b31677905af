//! End to end: what upstream's node conformance specs check of a kubelet, asserted with the exact
//! strings upstream v1.28 writes (reasons, messages, file contents), against the project's test
//! API server and the upstream kube-apiserver (Node,RBAC and NodeRestriction), so that the two
//! back ends are held to the same answers.

mod support;

use kubelet_cri::RuntimeService;
use serde_json::Value;
use std::time::Duration;
use support::cluster::{Backend, Cluster, eventually, host_ip};
use support::{BUSYBOX, Kubelet};

const START: Duration = Duration::from_secs(40);

crate::against_both_api_servers!(
    a_failing_init_container_keeps_the_app_containers_out,
    readiness_gates_hold_ready_until_their_condition_is_true,
    downward_api_volumes_show_resources_follow_metadata_and_apply_modes,
    ephemeral_containers_run_once_in_the_target_process_namespace,
    container_statuses_and_the_pod_environment_are_upstream_s,
    fs_group_owns_volume_contents_and_sets_setgid,
    liveness_restarts_and_readiness_holds_ready,
    lifecycle_hooks_run_after_start_and_before_stop,
    security_context_privileges_read_only_root_sysctls_and_seccomp,
);

/// A pod bound to `node` with busybox containers given as (name, script) under `list`
/// ("initContainers" or "containers"); `extra_spec` and `extra_container` are indented YAML.
struct PodYaml<'a> {
    name: &'a str,
    node: &'a str,
    policy: &'a str,
    extra_spec: &'a str,
    init: &'a [(&'a str, &'a str)],
    apps: &'a [(&'a str, &'a str, &'a str)],
}

impl PodYaml<'_> {
    fn render(&self) -> String {
        let mut y = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {}\n  namespace: default\nspec:\n  nodeName: {}\n  restartPolicy: {}\n  terminationGracePeriodSeconds: 2\n{}",
            self.name, self.node, self.policy, self.extra_spec
        );
        let container = |name: &str, script: &str, extra: &str| {
            format!(
                "  - name: {name}\n    image: {BUSYBOX}\n    imagePullPolicy: IfNotPresent\n    command: [\"/bin/sh\", \"-c\", {script:?}]\n{extra}"
            )
        };
        if !self.init.is_empty() {
            y.push_str("  initContainers:\n");
            for (name, script) in self.init {
                y.push_str(&container(name, script, ""));
            }
        }
        y.push_str("  containers:\n");
        for (name, script, extra) in self.apps {
            y.push_str(&container(name, script, extra));
        }
        y
    }
}

fn pod_json(cluster: &Cluster, name: &str) -> Option<Value> {
    cluster.get("pod", name, "default")
}

fn condition<'a>(pod: &'a Value, kind: &str) -> Option<&'a Value> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// (status, reason, message) of a pod condition, absent fields as "".
fn condition_triple(pod: &Value, kind: &str) -> (String, String, String) {
    let c = condition(pod, kind).unwrap_or_else(|| panic!("no {kind} condition: {pod}"));
    let s = |f: &str| c[f].as_str().unwrap_or_default().to_string();
    (s("status"), s("reason"), s("message"))
}

fn triple(status: &str, reason: &str, message: &str) -> (String, String, String) {
    (status.into(), reason.into(), message.into())
}

fn container_status<'a>(pod: &'a Value, list: &str, name: &str) -> Option<&'a Value> {
    pod["status"][list]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
}

/// What a container wrote to its first log file, CRI prefixes taken off.
fn container_log(k: &Kubelet, pod: &Value, container: &str) -> Option<String> {
    let dir = format!(
        "default_{}_{}",
        pod["metadata"]["name"].as_str()?,
        pod["metadata"]["uid"].as_str()?
    );
    let raw = std::fs::read_to_string(
        k.dir
            .join("pod-logs")
            .join(dir)
            .join(container)
            .join("0.log"),
    )
    .ok()?;
    let mut out = String::new();
    for line in raw.lines() {
        // TIMESTAMP STREAM TAG PAYLOAD; a partial line (P) continues on the next one.
        let mut parts = line.splitn(4, ' ');
        let (_, _, tag) = (parts.next()?, parts.next()?, parts.next()?);
        out.push_str(parts.next().unwrap_or_default());
        if tag == "F" {
            out.push('\n');
        }
    }
    Some(out)
}

/// Waits for a container's log to hold `marker`, and gives the log.
async fn log_with(
    cluster: &Cluster,
    k: &Kubelet,
    pod: &str,
    container: &str,
    marker: &str,
) -> String {
    eventually(
        &format!("{marker:?} in the log of {pod}/{container}"),
        START,
        k,
        || {
            let p = pod_json(cluster, pod)?;
            container_log(k, &p, container).filter(|l| l.contains(marker))
        },
    )
    .await
}

async fn a_failing_init_container_keeps_the_app_containers_out(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-conf-init";
    let mut k = cluster.kubelet(node);
    k.start();
    let init: &[(&str, &str)] = &[("init1", "exit 1"), ("init2", "exit 0")];
    let apps: &[(&str, &str, &str)] = &[("app", "sleep 3600", "")];
    for (name, policy) in [("init-never", "Never"), ("init-always", "Always")] {
        cluster.create(
            &PodYaml {
                name,
                node,
                policy,
                extra_spec: "",
                init,
                apps,
            }
            .render(),
        );
    }

    // Never: the pod fails, its conditions name the init containers left.
    let failed = eventually("init-never Failed", START, &k, || {
        pod_json(&cluster, "init-never").filter(|p| p["status"]["phase"] == "Failed")
    })
    .await;
    assert_eq!(
        condition_triple(&failed, "Initialized"),
        triple(
            "False",
            "ContainersNotInitialized",
            "containers with incomplete status: [init1 init2]"
        ),
        "{failed}"
    );
    for kind in ["Ready", "ContainersReady"] {
        assert_eq!(
            condition_triple(&failed, kind),
            triple("False", "PodFailed", ""),
            "{failed}"
        );
    }
    let init1 = container_status(&failed, "initContainerStatuses", "init1").unwrap();
    assert_eq!(init1["state"]["terminated"]["exitCode"], 1, "{init1}");
    assert_eq!(init1["state"]["terminated"]["reason"], "Error", "{init1}");
    assert_eq!(init1["restartCount"], 0, "{init1}");
    let init2 = container_status(&failed, "initContainerStatuses", "init2").unwrap();
    assert_eq!(init2["state"]["waiting"]["reason"], "PodInitializing");
    let app = container_status(&failed, "containerStatuses", "app").unwrap();
    assert_eq!(app["state"]["waiting"]["reason"], "PodInitializing");

    // Always: init1 is retried with back-off; the app containers never start.
    let retried = eventually("init1 of init-always restarted", START, &k, || {
        let p = pod_json(&cluster, "init-always")?;
        let init1 = container_status(&p, "initContainerStatuses", "init1")?;
        (init1["restartCount"].as_i64()? >= 1).then_some(p)
    })
    .await;
    assert_eq!(retried["status"]["phase"], "Pending");
    assert_eq!(
        condition_triple(&retried, "Initialized"),
        triple(
            "False",
            "ContainersNotInitialized",
            "containers with incomplete status: [init1 init2]"
        )
    );
    for kind in ["Ready", "ContainersReady"] {
        assert_eq!(
            condition_triple(&retried, kind),
            triple(
                "False",
                "ContainersNotReady",
                "containers with unready status: [app]"
            ),
            "{retried}"
        );
    }
    let app = container_status(&retried, "containerStatuses", "app").unwrap();
    assert_eq!(app["state"]["waiting"]["reason"], "PodInitializing");
    for pod in ["init-never", "init-always"] {
        let names: Vec<String> = k
            .containers(pod)
            .await
            .iter()
            .map(|c| c.metadata.as_ref().unwrap().name.clone())
            .collect();
        assert!(
            !names.iter().any(|n| n == "app"),
            "{pod} started app: {names:?}"
        );
    }
    k.cleanup().await;
}

async fn readiness_gates_hold_ready_until_their_condition_is_true(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-conf-gates";
    let mut k = cluster.kubelet(node);
    k.start();
    let gate = "example.com/feature-1";
    cluster.create(
        &PodYaml {
            name: "gated",
            node,
            policy: "Always",
            extra_spec: &format!("  readinessGates:\n  - conditionType: {gate}\n"),
            init: &[],
            apps: &[("app", "sleep 3600", "")],
        }
        .render(),
    );
    let ready_of = |want: (&'static str, &'static str, &'static str)| {
        let cluster = &cluster;
        move || {
            let p = pod_json(cluster, "gated")?;
            (condition(&p, "Ready").is_some()
                && condition_triple(&p, "Ready") == triple(want.0, want.1, want.2))
            .then_some(p)
        }
    };
    let p = eventually(
        "Ready False for the missing gate condition",
        START,
        &k,
        ready_of((
            "False",
            "ReadinessGatesNotReady",
            "corresponding condition of pod readiness gate \"example.com/feature-1\" does not exist.",
        )),
    )
    .await;
    assert_eq!(
        condition_triple(&p, "ContainersReady"),
        triple("True", "", "")
    );

    let set = |status: &str| {
        let patch =
            format!(r#"{{"status":{{"conditions":[{{"type":"{gate}","status":"{status}"}}]}}}}"#);
        cluster
            .kubectl(&[
                "patch",
                "pod",
                "gated",
                "--subresource=status",
                "--type=strategic",
                "-p",
                &patch,
            ])
            .unwrap_or_else(|e| panic!("kubectl patch: {e}"));
    };
    set("False");
    eventually(
        "Ready False for the False gate",
        START,
        &k,
        ready_of((
            "False",
            "ReadinessGatesNotReady",
            "the status of pod readiness gate \"example.com/feature-1\" is not \"True\", but False",
        )),
    )
    .await;
    set("True");
    let ready = eventually("Ready True", START, &k, ready_of(("True", "", ""))).await;
    // The kubelet's later status patches (a container restart forces one) keep the condition.
    // The container is the one the status names: the other API server's case left a pod of
    // the same name in the shared runtime, which this kubelet removes in its own time.
    let id = container_status(&ready, "containerStatuses", "app")
        .and_then(|app| app["containerID"].as_str()?.split_once("://"))
        .map(|(_, id)| id.to_string())
        .unwrap_or_else(|| panic!("the app's container id in {ready}"));
    k.cri()
        .await
        .stop_container(&id, Duration::from_secs(0))
        .await
        .unwrap();
    let restarted = eventually("app restarted", START, &k, || {
        let p = pod_json(&cluster, "gated")?;
        let app = container_status(&p, "containerStatuses", "app")?;
        (app["restartCount"].as_i64()? >= 1 && app["ready"] == true).then_some(p)
    })
    .await;
    assert_eq!(
        condition_triple(&restarted, gate),
        triple("True", "", ""),
        "{restarted}"
    );
    assert_eq!(
        condition_triple(&restarted, "Ready"),
        triple("True", "", "")
    );
    k.cleanup().await;
}

async fn downward_api_volumes_show_resources_follow_metadata_and_apply_modes(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-conf-downward";
    let mut k = cluster.kubelet(node);
    k.start();
    let volume = "  volumes:
  - name: info
    downwardAPI:
      defaultMode: 0400
      items:
      - path: labels
        fieldRef: {fieldPath: metadata.labels}
      - path: annotations
        fieldRef: {fieldPath: metadata.annotations}
      - path: cpu_limit
        resourceFieldRef: {containerName: app, resource: limits.cpu}
      - path: memory_request
        resourceFieldRef: {containerName: app, resource: requests.memory}
        mode: 0600
";
    let extra = "    resources:
      requests: {cpu: 250m, memory: 32Mi}
      limits: {cpu: 1250m, memory: 64Mi}
    volumeMounts:
    - {name: info, mountPath: /info}
";
    let script = "cat /info/cpu_limit; echo; cat /info/memory_request; echo; \
                  stat -c '%a %n' /info/..data/cpu_limit /info/..data/memory_request; echo listed; \
                  while true; do if grep -q two /info/labels && grep -q second /info/annotations; then echo updated; cat /info/labels; echo; cat /info/annotations; echo; echo end; break; fi; sleep 0.2; done; sleep 3600";
    let manifest = PodYaml {
        name: "downward",
        node,
        policy: "Always",
        extra_spec: volume,
        init: &[],
        apps: &[("app", script, extra)],
    }
    .render()
    .replace(
        "  namespace: default\n",
        "  namespace: default\n  labels: {stage: one}\n  annotations: {note: first}\n",
    );
    cluster.create(&manifest);
    let first = log_with(&cluster, &k, "downward", "app", "listed").await;
    // limits.cpu without a divisor (stored as "0", meaning 1) rounds up to whole cores.
    assert_eq!(
        first,
        "2\n33554432\n400 /info/..data/cpu_limit\n600 /info/..data/memory_request\nlisted\n"
    );

    cluster
        .kubectl(&["label", "pod", "downward", "stage=two", "--overwrite"])
        .unwrap();
    cluster
        .kubectl(&["annotate", "pod", "downward", "note=second", "--overwrite"])
        .unwrap();
    let updated = log_with(&cluster, &k, "downward", "app", "end").await;
    let after = updated.split_once("updated\n").unwrap().1;
    // Sorted key="value" lines; the kubelet's own annotations are there as upstream's are.
    let lines: Vec<&str> = after.lines().collect();
    assert_eq!(lines[0], "stage=\"two\"", "{after}");
    assert!(
        lines[1].starts_with("kubernetes.io/config.seen=\""),
        "{after}"
    );
    assert_eq!(
        &lines[2..],
        [
            "kubernetes.io/config.source=\"api\"",
            "note=\"second\"",
            "end"
        ],
        "{after}"
    );
    k.cleanup().await;
}

async fn ephemeral_containers_run_once_in_the_target_process_namespace(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-conf-debug";
    let ca = cluster.kubeconfig.with_file_name("ca.pem");
    cluster.write_ca(&ca);
    let mut k = cluster
        .kubelet_at(node, &host_ip())
        .with_args(&[&format!("--client-ca-file={}", ca.display())]);
    k.start();
    cluster.create(
        &PodYaml {
            name: "debugged",
            node,
            policy: "Always",
            extra_spec: "",
            init: &[],
            apps: &[("app", "exec sleep 3601", "")],
        }
        .render(),
    );
    k.wait_running("debugged", &["app"], START).await;

    // kubectl debug PATCHes pods/debugged/ephemeralcontainers, as it does against any cluster.
    cluster
        .kubectl(&[
            "debug",
            "debugged",
            "--image",
            BUSYBOX,
            "--target=app",
            "--container=dbg",
            "--",
            "sh",
            "-c",
            "echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' '); echo done",
        ])
        .unwrap_or_else(|e| panic!("kubectl debug: {e}"));
    let p = eventually("dbg terminated", START, &k, || {
        let p = pod_json(&cluster, "debugged")?;
        let s = container_status(&p, "ephemeralContainerStatuses", "dbg")?;
        s["state"]["terminated"].is_object().then_some(p)
    })
    .await;
    let spec = &p["spec"]["ephemeralContainers"][0];
    assert_eq!(spec["targetContainerName"], "app");
    assert_eq!(spec["imagePullPolicy"], "IfNotPresent");
    assert_eq!(spec["terminationMessagePolicy"], "File");
    let s = container_status(&p, "ephemeralContainerStatuses", "dbg").unwrap();
    assert_eq!(s["state"]["terminated"]["reason"], "Completed", "{s}");
    assert_eq!(s["state"]["terminated"]["exitCode"], 0, "{s}");
    assert_eq!(s["ready"], false, "{s}");
    assert_eq!(s["restartCount"], 0, "{s}");
    assert!(s.get("started").is_none(), "upstream sets no started: {s}");
    assert_eq!(s["image"], BUSYBOX);
    // The app container's process is pid 1 of the namespace the debugger joined.
    let logs = cluster
        .kubectl(&["logs", "debugged", "-c", "dbg"])
        .unwrap_or_else(|e| panic!("kubectl logs: {e}"));
    assert_eq!(logs, "pid1=sleep 3601\ndone\n");

    // A second one, left running: exec reaches it by name; removing one is refused.
    cluster
        .kubectl(&[
            "debug",
            "debugged",
            "--image",
            BUSYBOX,
            "--container=shell",
            "--",
            "sleep",
            "3600",
        ])
        .unwrap();
    eventually("shell running", START, &k, || {
        let p = pod_json(&cluster, "debugged")?;
        let s = container_status(&p, "ephemeralContainerStatuses", "shell")?;
        s["state"]["running"].is_object().then_some(())
    })
    .await;
    let out = cluster
        .kubectl(&[
            "exec",
            "debugged",
            "-c",
            "shell",
            "--",
            "cat",
            "/proc/1/cmdline",
        ])
        .unwrap_or_else(|e| panic!("kubectl exec: {e}"));
    assert_eq!(
        out, "sleep\u{0}3600\u{0}",
        "shell has its own process namespace"
    );

    let mut pod = pod_json(&cluster, "debugged").unwrap();
    pod["spec"]["ephemeralContainers"]
        .as_array_mut()
        .unwrap()
        .retain(|c| c["name"] != "dbg");
    let refused = cluster
        .kubectl_stdin(
            &[
                "replace",
                "--raw",
                "/api/v1/namespaces/default/pods/debugged/ephemeralcontainers",
                "-f",
                "-",
            ],
            Some(&pod.to_string()),
        )
        .unwrap_err();
    assert_eq!(
        refused.trim_end(),
        "The Pod \"debugged\" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers \"dbg\" may not be removed"
    );

    // Never restarted: a few syncs later dbg still has its one instance.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dbg = k
        .containers("debugged")
        .await
        .into_iter()
        .filter(|c| c.metadata.as_ref().unwrap().name == "dbg")
        .count();
    assert_eq!(dbg, 1);
    let p = pod_json(&cluster, "debugged").unwrap();
    let s = container_status(&p, "ephemeralContainerStatuses", "dbg").unwrap();
    assert_eq!(s["state"]["terminated"]["reason"], "Completed", "{s}");
    k.cleanup().await;
}

async fn container_statuses_and_the_pod_environment_are_upstream_s(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-conf-env";
    let mut k = cluster.kubelet(node);
    k.start();
    cluster.create(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  present: \"yes\"\n",
    );
    let missing_key = "    env:
    - name: X
      valueFrom:
        configMapKeyRef: {name: settings, key: missing}
";
    let fallback = "    terminationMessagePolicy: FallbackToLogsOnError\n";
    let subpath = "    env:
    - name: POD_NAME
      valueFrom:
        fieldRef: {fieldPath: metadata.name}
    volumeMounts:
    - {name: scratch, mountPath: /scratch, subPathExpr: $(POD_NAME)}
    - {name: memory, mountPath: /cache}
";
    let spec = "  hostAliases:
  - ip: 123.45.67.89
    hostnames: [foo.local, bar.local]
  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}
  volumes:
  - {name: scratch, emptyDir: {}}
  - {name: memory, emptyDir: {medium: Memory}}
";
    let env_script = "cat /etc/hosts; echo ---; echo hello > /scratch/file; \
                      grep ' /cache ' /proc/mounts | cut -d' ' -f3; id -u; id -g; id -G; \
                      echo listed; sleep 3600";
    cluster.create(
        &PodYaml {
            name: "statuses",
            node,
            policy: "Never",
            extra_spec: spec,
            init: &[],
            apps: &[
                ("config", "sleep 3600", missing_key),
                ("message", "printf bye > /dev/termination-log; exit 3", ""),
                ("fallback", "echo from-logs; exit 4", fallback),
                ("env", env_script, subpath),
            ],
        }
        .render(),
    );

    let p = eventually("every container settled", START, &k, || {
        let p = pod_json(&cluster, "statuses")?;
        let settled = |name: &str, state: &str| {
            container_status(&p, "containerStatuses", name)
                .is_some_and(|s| s["state"][state].is_object())
        };
        (settled("message", "terminated")
            && settled("fallback", "terminated")
            && settled("env", "running")
            && container_status(&p, "containerStatuses", "config")
                .is_some_and(|s| s["state"]["waiting"]["reason"] == "CreateContainerConfigError"))
        .then_some(p)
    })
    .await;
    let status = |name: &str| container_status(&p, "containerStatuses", name).unwrap();
    assert_eq!(
        status("config")["state"]["waiting"]["message"],
        "couldn't find key missing in ConfigMap default/settings"
    );
    let terminated = |name: &str| status(name)["state"]["terminated"].clone();
    assert_eq!(
        (
            terminated("message")["exitCode"].clone(),
            terminated("message")["reason"].clone(),
            terminated("message")["message"].clone()
        ),
        (3.into(), "Error".into(), "bye".into())
    );
    assert_eq!(terminated("fallback")["message"], "from-logs\n");
    assert_eq!(terminated("fallback")["exitCode"], 4);

    // Addresses: the node's IP, the sandbox's IP in the run's CNI subnet.
    let st = &p["status"];
    assert_eq!(st["hostIP"], "127.0.0.1");
    assert_eq!(st["hostIPs"], serde_json::json!([{"ip": "127.0.0.1"}]));
    let pod_ip = st["podIP"].as_str().unwrap().to_string();
    assert!(pod_ip.parse::<std::net::Ipv4Addr>().is_ok(), "{st}");
    assert_eq!(st["podIPs"], serde_json::json!([{"ip": pod_ip}]));

    let env = log_with(&cluster, &k, "statuses", "env", "listed").await;
    let (hosts, rest) = env.split_once("---\n").unwrap();
    assert_eq!(
        hosts,
        format!(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
             {pod_ip}\tstatuses\n\n# Entries added by HostAliases.\n123.45.67.89\tfoo.local\tbar.local\n"
        )
    );
    let lines: Vec<&str> = rest.lines().collect();
    // medium Memory is a tmpfs; runAsUser/runAsGroup set the ids and fsGroup is a supplementary
    // group.
    assert_eq!(lines[0], "tmpfs", "{rest}");
    assert_eq!((lines[1], lines[2]), ("1000", "3000"), "{rest}");
    assert!(lines[3].split(' ').any(|g| g == "2000"), "{rest}");
    // subPathExpr: the file went to the pod-named directory of the emptyDir.
    let uid = p["metadata"]["uid"].as_str().unwrap();
    let written = k
        .dir
        .join("root/pods")
        .join(uid)
        .join("volumes/kubernetes.io~empty-dir/scratch/statuses/file");
    assert_eq!(std::fs::read_to_string(&written).unwrap(), "hello\n");

    // The node reports the runtime it runs on.
    let n = cluster.get("node", node, "default").unwrap();
    let runtime = k.cri().await.version().await.unwrap();
    assert_eq!(
        n["status"]["nodeInfo"]["containerRuntimeVersion"],
        format!("{}://{}", runtime.runtime_name, runtime.runtime_version)
    );

    // Events carry upstream's reasons and messages.
    let events = cluster
        .kubectl(&[
            "get",
            "events",
            "--field-selector=involvedObject.name=statuses",
            "-o",
            "json",
        ])
        .unwrap();
    let events: Value = serde_json::from_str(&events).unwrap();
    let has = |reason: &str, message: &str| {
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == reason && e["message"] == message)
    };
    assert!(
        has(
            "Failed",
            "Error: couldn't find key missing in ConfigMap default/settings"
        ),
        "{events}"
    );
    assert!(has("Started", "Started container env"), "{events}");
    k.cleanup().await;
}

async fn fs_group_owns_volume_contents_and_sets_setgid(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-conf-fsgroup";
    let mut k = cluster.kubelet(node);
    k.start();
    cluster.create(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n  namespace: default\ndata:\n  key: value\n",
    );
    let spec = "  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}
  volumes:
  - {name: scratch, emptyDir: {}}
  - {name: config, configMap: {name: owned}}
";
    let mounts = "    volumeMounts:
    - {name: scratch, mountPath: /scratch}
    - {name: config, mountPath: /config}
";
    // The container runs as group 3000: only setgid on the directory gives its file group 2000.
    let script = "echo x > /scratch/file; stat -c '%g %a' /scratch /scratch/file; \
                  stat -L -c '%g %a' /config/key; echo listed; sleep 3600";
    cluster.create(
        &PodYaml {
            name: "owned",
            node,
            policy: "Never",
            extra_spec: spec,
            init: &[],
            apps: &[("app", script, mounts)],
        }
        .render(),
    );
    let log = log_with(&cluster, &k, "owned", "app", "listed").await;
    assert_eq!(log, "2000 2777\n2000 644\n2000 644\nlisted\n");
    k.cleanup().await;
}

async fn liveness_restarts_and_readiness_holds_ready(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-conf-probes";
    let mut k = cluster.kubelet(node);
    k.start();
    let liveness = "    livenessProbe:
      exec: {command: [/bin/sh, -c, 'echo sick; exit 1']}
      periodSeconds: 1
      failureThreshold: 1
";
    let readiness = "    readinessProbe:
      exec: {command: [test, -e, /tmp/ready]}
      periodSeconds: 1
";
    cluster.create(
        &PodYaml {
            name: "liveness",
            node,
            policy: "Always",
            extra_spec: "",
            init: &[],
            apps: &[("live", "sleep 3600", liveness)],
        }
        .render(),
    );
    cluster.create(
        &PodYaml {
            name: "readiness",
            node,
            policy: "Always",
            extra_spec: "",
            init: &[],
            apps: &[("ready", "sleep 4; touch /tmp/ready; sleep 3600", readiness)],
        }
        .render(),
    );

    // Readiness: running but not ready until the probe passes.
    let unready = eventually("readiness running", START, &k, || {
        let p = pod_json(&cluster, "readiness")?;
        container_status(&p, "containerStatuses", "ready")
            .is_some_and(|s| s["state"]["running"].is_object())
            .then_some(p)
    })
    .await;
    assert_eq!(
        condition_triple(&unready, "Ready"),
        triple(
            "False",
            "ContainersNotReady",
            "containers with unready status: [ready]"
        ),
        "{unready}"
    );
    let ready = eventually("readiness Ready", START, &k, || {
        let p = pod_json(&cluster, "readiness")?;
        (condition(&p, "Ready").is_some_and(|c| c["status"] == "True")).then_some(p)
    })
    .await;
    let status = container_status(&ready, "containerStatuses", "ready").unwrap();
    assert_eq!(status["ready"], true, "{status}");
    assert_eq!(status["restartCount"], 0, "{status}");
    assert!(
        cluster
            .event_reasons("readiness")
            .expect("kubectl get events")
            .contains(&("Unhealthy".into(), "Readiness probe failed: ".into())),
        "{:?}",
        cluster
            .event_reasons("readiness")
            .expect("kubectl get events")
    );

    // Liveness: a failing probe kills the container and the restart policy starts it again.
    let restarted = eventually("live restarted", START, &k, || {
        let p = pod_json(&cluster, "liveness")?;
        let s = container_status(&p, "containerStatuses", "live")?;
        (s["restartCount"].as_i64()? >= 1).then_some(p)
    })
    .await;
    // Killed by the kubelet: SIGKILL after the grace period, as sleep as PID 1 ignores TERM.
    let live = container_status(&restarted, "containerStatuses", "live").unwrap();
    let last = &live["lastState"]["terminated"];
    assert_eq!(
        (&last["exitCode"], &last["reason"]),
        (&137.into(), &"Error".into()),
        "{live}"
    );
    let events = cluster
        .event_reasons("liveness")
        .expect("kubectl get events");
    for (reason, message) in [
        ("Unhealthy", "Liveness probe failed: sick\n"),
        (
            "Killing",
            "Container live failed liveness probe, will be restarted",
        ),
    ] {
        assert!(
            events.contains(&(reason.into(), message.into())),
            "{reason} {message:?}: {events:?}"
        );
    }
    k.cleanup().await;
}

async fn lifecycle_hooks_run_after_start_and_before_stop(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-conf-hooks";
    let mut k = cluster.kubelet(node);
    k.start();
    let out = k.dir.join("hook-out");
    let hooks = "    lifecycle:
      postStart:
        exec: {command: [/bin/sh, -c, 'echo from-hook > /tmp/hook']}
      preStop:
        exec: {command: [/bin/sh, -c, 'echo stopping > /out/prestop']}
    volumeMounts:
    - {name: out, mountPath: /out}
";
    let spec = format!(
        "  volumes:\n  - name: out\n    hostPath: {{path: {}, type: DirectoryOrCreate}}\n",
        out.display()
    );
    cluster.create(
        &PodYaml {
            name: "hooks",
            node,
            policy: "Never",
            extra_spec: &spec,
            init: &[],
            apps: &[(
                "app",
                "until test -e /tmp/hook; do sleep 0.1; done; cat /tmp/hook; echo listed; sleep 3600",
                hooks,
            )],
        }
        .render(),
    );
    let failing = "    lifecycle:
      postStart:
        exec: {command: [/bin/sh, -c, 'echo secret; exit 1']}
";
    cluster.create(
        &PodYaml {
            name: "bad-hook",
            node,
            policy: "Never",
            extra_spec: "",
            init: &[],
            apps: &[("app", "sleep 3600", failing)],
        }
        .render(),
    );

    // postStart ran in the container before it went on.
    let log = log_with(&cluster, &k, "hooks", "app", "listed").await;
    assert_eq!(log, "from-hook\nlisted\n");

    // A failing postStart kills the container; the event does not carry the hook's output.
    let killed = eventually("bad-hook app terminated", START, &k, || {
        let p = pod_json(&cluster, "bad-hook")?;
        container_status(&p, "containerStatuses", "app")
            .is_some_and(|s| s["state"]["terminated"].is_object())
            .then_some(p)
    })
    .await;
    assert_eq!(killed["status"]["phase"], "Failed", "{killed}");
    let events = cluster
        .event_reasons("bad-hook")
        .expect("kubectl get events");
    assert!(
        events.contains(&("FailedPostStartHook".into(), "PostStartHook failed".into())),
        "{events:?}"
    );

    // preStop runs when the pod is deleted.
    cluster
        .kubectl(&["delete", "pod", "hooks", "--wait=false"])
        .unwrap();
    let written = eventually("preStop wrote its file", START, &k, || {
        std::fs::read_to_string(out.join("prestop")).ok()
    })
    .await;
    assert_eq!(written, "stopping\n");
    k.cleanup().await;
}

async fn security_context_privileges_read_only_root_sysctls_and_seccomp(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-conf-secctx";
    let mut k = cluster.kubelet(node);
    k.start();
    let spec = "  securityContext:
    sysctls:
    - {name: kernel.shm_rmid_forced, value: '1'}
    - {name: net.ipv4.ip_unprivileged_port_start, value: '1000'}
";
    let privileged = "    securityContext: {privileged: true}\n";
    let read_only = "    securityContext: {readOnlyRootFilesystem: true}\n";
    let seccomp = "    securityContext: {seccompProfile: {type: RuntimeDefault}}\n";
    let then_wait = "; echo listed; sleep 3600";
    let scripts = [
        (
            "privileged",
            "mkdir /tmp/m && mount -t tmpfs t /tmp/m && echo mounted",
            privileged,
        ),
        ("read-only", "touch /x 2>&1 || echo refused", read_only),
        (
            "sysctls",
            "cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ip_unprivileged_port_start",
            "",
        ),
        ("seccomp", "grep '^Seccomp:' /proc/1/status", seccomp),
    ];
    let scripts: Vec<(&str, String, &str)> = scripts
        .into_iter()
        .map(|(name, script, extra)| (name, format!("{script}{then_wait}"), extra))
        .collect();
    let apps: Vec<(&str, &str, &str)> = scripts
        .iter()
        .map(|(name, script, extra)| (*name, script.as_str(), *extra))
        .collect();
    cluster.create(
        &PodYaml {
            name: "secctx",
            node,
            policy: "Never",
            extra_spec: spec,
            init: &[],
            apps: &apps,
        }
        .render(),
    );
    for (container, want) in [
        ("privileged", "mounted\nlisted\n"),
        (
            "read-only",
            "touch: /x: Read-only file system\nrefused\nlisted\n",
        ),
        ("sysctls", "1\n1000\nlisted\n"),
        ("seccomp", "Seccomp:\t2\nlisted\n"),
    ] {
        let log = log_with(&cluster, &k, "secctx", container, "listed").await;
        assert_eq!(log, want, "{container}");
    }
    k.cleanup().await;
}
