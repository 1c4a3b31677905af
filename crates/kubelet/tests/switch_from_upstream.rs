//! A node switched from the upstream kubelet v1.28.4 to this one: the upstream kubelet runs the
//! pods on the shared private containerd, stops on SIGTERM (leaving its containers running, as
//! upstream does), and this kubelet takes over the same root dir, manifests and runtime. No
//! container may restart: static pods without `metadata.uid` keep the UID the upstream kubelet
//! gave them. A later change of one container's image restarts exactly that one in a pod with an
//! explicit UID; a change to a pod without one replaces that pod under a new UID, as upstream.

mod support;

use kubelet_cri::{RuntimeService, api};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::cluster::{Backend, Cluster};
use support::{BUSYBOX, Kubelet, free_port, wait_for};

const PAUSE: &str = "localhost/pause:3.10";
const START: Duration = Duration::from_secs(90);
/// Several of this kubelet's sync periods (syncFrequency 2s below).
const SYNCS: Duration = Duration::from_secs(12);
/// Where a path to the upstream kubelet may be given instead of `../shared/tools/get`.
const UPSTREAM_KUBELET_VAR: &str = "KUBELET_TEST_UPSTREAM_KUBELET";

/// The pods of a switch and the containers each runs.
const PODS: [(&str, &[&str]); 3] = [
    ("alpha", &["main", "swap"]),
    ("beta", &["web", "secure"]),
    ("gamma", &["worker"]),
];

/// Fields that reach upstream's v1.28 hash in many shapes: env, ports, resources, probes,
/// volume mounts, security context, lifecycle. `swap` runs the pause image or, with stdin kept
/// open, busybox's shell, so only its image need change. Only alpha carries its UID: upstream
/// derives a missing one from the manifest's content, so an edited alpha would be a new pod; beta
/// and gamma have none, as kubeadm's static pods.
fn manifests(alpha_uid: &str, swap_image: &str) -> [(&'static str, String); 3] {
    [
        (
            "alpha.yaml",
            format!(
                r#"apiVersion: v1
kind: Pod
metadata:
  name: alpha
  uid: {alpha_uid}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: {BUSYBOX}
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    ports:
    - {{name: metrics, containerPort: 9100}}
    env:
    - {{name: GREETING, value: "a<b>&c"}}
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    resources:
      limits: {{cpu: 100m, memory: 32Mi}}
  - name: swap
    image: {swap_image}
    imagePullPolicy: IfNotPresent
    stdin: true
"#
            ),
        ),
        (
            "beta.yaml",
            format!(
                r#"apiVersion: v1
kind: Pod
metadata:
  name: beta
  labels: {{app: beta}}
spec:
  terminationGracePeriodSeconds: 2
  volumes:
  - name: www
    emptyDir: {{}}
  initContainers:
  - name: init
    image: {BUSYBOX}
    command: ["/bin/sh", "-c", "echo ok > /www/index.html"]
    volumeMounts:
    - {{name: www, mountPath: /www}}
  containers:
  - name: web
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    workingDir: /www
    ports:
    - {{name: http, containerPort: 8080}}
    - {{containerPort: 8125, protocol: UDP}}
    readinessProbe:
      httpGet: {{path: /index.html, port: http}}
      periodSeconds: 2
    livenessProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 5
    volumeMounts:
    - {{name: www, mountPath: /www, readOnly: true}}
  - name: secure
    image: {BUSYBOX}
    command: ["sleep", "3600"]
    terminationMessagePolicy: FallbackToLogsOnError
    securityContext:
      runAsUser: 1000
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {{drop: ["ALL"]}}
    lifecycle:
      preStop:
        exec: {{command: ["/bin/true"]}}
    startupProbe:
      exec: {{command: ["true"]}}
      periodSeconds: 1
"#
            ),
        ),
        (
            "gamma.yaml",
            format!(
                r#"apiVersion: v1
kind: Pod
metadata:
  name: gamma
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: worker
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["/bin/sh", "-c"]
    args: ["trap 'exit 0' TERM; sleep 3600 & wait"]
    env:
    - name: CPU_MILLIS
      valueFrom: {{resourceFieldRef: {{resource: limits.cpu, divisor: 1m}}}}
    - name: MEMORY
      valueFrom: {{resourceFieldRef: {{resource: requests.memory}}}}
    resources:
      requests: {{cpu: "0.25", memory: "33554432"}}
      limits: {{cpu: "0.5", memory: 1G}}
"#
            ),
        ),
    ]
}

/// A fresh pod UID for alpha, so a leftover of an earlier run is never taken for this one's.
fn fresh_uid() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("5a17c4e0-0000-4000-8000-{:012x}", nanos & 0xffff_ffff_ffff)
}

/// The UID of each named pod once its sandbox exists, e.g. the UIDs the upstream kubelet derived
/// for static pods without one.
async fn pod_uids(k: &Kubelet, pods: &[String]) -> Vec<String> {
    let mut uids = Vec::new();
    for pod in pods {
        let uid = wait_for(&format!("a sandbox of {pod}"), START, k, || async {
            k.pod_uid(pod).await
        })
        .await;
        uids.push(uid);
    }
    uids
}

/// The upstream kubelet binary: [`UPSTREAM_KUBELET_VAR`], or what `../shared/tools/get` unpacks.
fn upstream_kubelet_binary() -> PathBuf {
    if let Ok(path) = std::env::var(UPSTREAM_KUBELET_VAR) {
        return PathBuf::from(path);
    }
    let get = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/get");
    let out = Command::new(&get).arg("kubelet").output().unwrap_or_else(|e| {
        panic!(
            "the switch tests need the upstream kubelet v1.28.4: {} cannot run ({e}); set {UPSTREAM_KUBELET_VAR} to a kubelet binary",
            get.display()
        )
    });
    assert!(
        out.status.success(),
        "the switch tests need the upstream kubelet v1.28.4: `{} kubelet` failed: {}",
        get.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The upstream kubelet on a test kubelet's root dir, manifest dir and runtime.
struct Upstream {
    child: Option<Child>,
    log: PathBuf,
    root: PathBuf,
    /// Pods whose logs it wrote outside the test's directory, removed on drop.
    pod_uids: Vec<String>,
}

impl Upstream {
    fn start(k: &Kubelet, extra: &[String]) -> Self {
        let binary = upstream_kubelet_binary();
        ensure_cgroup_root(k.runtime.cgroup_root());
        let config = k.dir.join("upstream-config.yaml");
        // Standalone flags these machines need (shared/tools/README.md); the disk may be fuller
        // than the default eviction thresholds allow, and image GC stays off on a runtime the
        // suites share.
        std::fs::write(
            &config,
            format!(
                r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failSwapOn: false
cgroupDriver: cgroupfs
cgroupRoot: {cgroup_root}
staticPodPath: {manifests}
port: {port}
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
authorization: {{mode: AlwaysAllow}}
evictionHard: {{memory.available: 1Mi, nodefs.available: 1%, imagefs.available: 1%}}
imageGCHighThresholdPercent: 100
"#,
                cgroup_root = k.runtime.cgroup_root(),
                manifests = k.manifests.display(),
                port = free_port(),
            ),
        )
        .unwrap();
        let log = k.dir.join("upstream-kubelet.log");
        let out = std::fs::File::create(&log).unwrap();
        let d = |p: &str| k.dir.join(p).display().to_string();
        let child = Command::new(&binary)
            .arg(format!("--config={}", config.display()))
            .arg(format!("--root-dir={}", d("root")))
            .arg(format!("--cert-dir={}", d("pki")))
            .arg(format!(
                "--container-runtime-endpoint={}",
                k.runtime.endpoint()
            ))
            .arg(format!("--hostname-override={}", k.node))
            .arg("-v=2")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Upstream {
            child: Some(child),
            log,
            root: k.dir.join("root"),
            pod_uids: Vec::new(),
        }
    }

    /// SIGTERM by PID, as a service manager stops it; panics when it does not exit in time.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..300 {
            if child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the upstream kubelet did not exit within 30 s of SIGTERM");
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // It bind-mounts its root dir onto itself to make it shared; the test's temp dir holds it.
        while nix::mount::umount2(&self.root, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
        remove_upstream_logs(&self.pod_uids);
    }
}

/// The upstream kubelet refuses a cgroup root missing from any hierarchy; ours makes what it
/// needs itself.
fn ensure_cgroup_root(root: &str) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(separator) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if matches!(fields.get(separator + 1), Some(&"cgroup" | &"cgroup2")) {
            let dir = Path::new(fields[4]).join(root.trim_start_matches('/'));
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
    }
}

/// One container instance: its id and when it started.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Instance {
    id: String,
    started_at: i64,
}

/// Every container instance of the named pods, by "pod/container", and their ready sandboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    containers: BTreeMap<String, Vec<Instance>>,
    sandboxes: BTreeMap<String, Vec<String>>,
}

async fn snapshot(k: &Kubelet, pods: &[String]) -> Snapshot {
    let cri = k.cri().await;
    let mut containers: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
    let mut sandboxes = BTreeMap::new();
    for pod in pods {
        for c in k.containers(pod).await {
            let status = cri.container_status(&c.id).await.unwrap();
            let name = &c.metadata.as_ref().unwrap().name;
            containers
                .entry(format!("{pod}/{name}"))
                .or_default()
                .push(Instance {
                    id: c.id.clone(),
                    started_at: status.started_at,
                });
        }
        // Dead sandboxes are garbage either kubelet may collect; a ready one replaced is a restart.
        let mut ids: Vec<String> = k
            .sandboxes(pod)
            .await
            .into_iter()
            .filter(|s| s.state == api::PodSandboxState::SandboxReady as i32)
            .map(|s| s.id)
            .collect();
        ids.sort();
        sandboxes.insert(pod.clone(), ids);
    }
    for instances in containers.values_mut() {
        instances.sort();
    }
    Snapshot {
        containers,
        sandboxes,
    }
}

/// Fails as soon as the pods' containers or sandboxes differ from `before`, watching for `span`.
async fn holds_still(k: &Kubelet, pods: &[String], before: &Snapshot, span: Duration) {
    let deadline = tokio::time::Instant::now() + span;
    while tokio::time::Instant::now() < deadline {
        let now = snapshot(k, pods).await;
        assert_eq!(
            &now,
            before,
            "a container or sandbox changed after the switch; kubelet log:\n{}",
            k.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until upstream's containers are all running and have settled, then snapshots them.
async fn run_on_upstream(k: &Kubelet, upstream: &Upstream, pods: &[String]) -> Snapshot {
    for (pod, (_, containers)) in pods.iter().zip(PODS) {
        wait_for(
            &format!("the upstream kubelet to run {pod} {containers:?}"),
            START,
            k,
            || async {
                let running = k.running(pod).await;
                containers
                    .iter()
                    .all(|c| running.contains_key(*c))
                    .then_some(())
            },
        )
        .await;
    }
    // Probes and a second sync settle; nothing is restarted by then.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = snapshot(k, pods).await;
    let upstream_log = std::fs::read_to_string(&upstream.log).unwrap_or_default();
    for (key, instances) in &before.containers {
        assert_eq!(
            instances.len(),
            1,
            "{key} restarted under the upstream kubelet; its log:\n{upstream_log}"
        );
    }
    before
}

/// Stops the upstream kubelet and checks that its containers outlive it.
async fn stop_upstream(k: &Kubelet, upstream: &mut Upstream, pods: &[String], before: &Snapshot) {
    upstream.stop();
    assert_eq!(
        &snapshot(k, pods).await,
        before,
        "stopping the upstream kubelet changed its pods"
    );
    for (pod, (_, containers)) in pods.iter().zip(PODS) {
        let running = k.running(pod).await;
        for c in containers {
            assert!(
                running.contains_key(*c),
                "{pod}/{c} stopped with the upstream kubelet"
            );
        }
    }
}

/// Changes alpha's `swap` image and checks that exactly that container restarted.
async fn swap_restarts_alone(k: &Kubelet, pods: &[String], before: &Snapshot, change: impl Fn()) {
    let key = format!("{}/swap", pods[0]);
    let old = before.containers[&key].clone();
    change();
    let new_id = wait_for(
        "the changed container to run again from the new image",
        START,
        k,
        || async {
            let running = k.running(&pods[0]).await;
            running
                .get("swap")
                .filter(|c| old.iter().all(|i| i.id != c.id))
                .map(|c| c.id.clone())
        },
    )
    .await;
    // The others keep running through several more syncs.
    tokio::time::sleep(SYNCS).await;
    let after = snapshot(k, pods).await;
    assert_eq!(
        after.sandboxes, before.sandboxes,
        "a sandbox changed with one image"
    );
    for (name, instances) in &before.containers {
        if *name != key {
            assert_eq!(
                after.containers.get(name),
                Some(instances),
                "{name} changed with another container's image; kubelet log:\n{}",
                k.log()
            );
        }
    }
    let swap = &after.containers[&key];
    assert!(
        swap.iter().any(|i| i.id == new_id),
        "{key}: {swap:?} lacks {new_id}"
    );
    let running = k.running(&pods[0]).await;
    assert_eq!(running["swap"].id, new_id, "{key} restarted more than once");
}

/// Removes what the upstream kubelet left outside the test's directory: its pods' logs.
fn remove_upstream_logs(pod_uids: &[String]) {
    for uid in pod_uids {
        if let Ok(entries) = std::fs::read_dir("/var/log/pods") {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().ends_with(uid.as_str()) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/var/log/containers") {
        for entry in entries.flatten() {
            let target = std::fs::read_link(entry.path()).unwrap_or_default();
            if pod_uids
                .iter()
                .any(|uid| target.to_string_lossy().contains(uid.as_str()))
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Everything a switch test leaves in the runtime and the cgroup tree; the upstream kubelet's
/// own leftovers go when it is dropped.
async fn clean_up(k: &mut Kubelet, uids: &[String]) {
    k.cleanup().await;
    for uid in uids {
        let _ = k.runtime.remove_pod(uid).await;
    }
    let _ = k.runtime.remove_cgroup_tree("kubepods");
}

#[tokio::test]
async fn static_pods_keep_running_through_a_switch_from_the_upstream_kubelet() {
    let _serial = support::serial().await;
    upstream_kubelet_binary();
    let port = free_port();
    let mut k = Kubelet::new("switch-static")
        .with_config("syncFrequency: 2s\n")
        .with_args(&[&format!("--read-only-port={port}")]);
    let alpha_uid = fresh_uid();
    let _alpha_guard = k.runtime.pod_guard(&alpha_uid);
    for (file, manifest) in manifests(&alpha_uid, PAUSE) {
        k.write_manifest(file, &manifest);
    }
    let pods: Vec<String> = PODS.iter().map(|(p, _)| k.pod_name(p)).collect();
    let mut upstream = Upstream::start(&k, &[]);
    let mut uids = vec![alpha_uid.clone()];
    uids.extend(pod_uids(&k, &pods[1..]).await);
    let _guards: Vec<_> = uids[1..].iter().map(|u| k.runtime.pod_guard(u)).collect();
    upstream.pod_uids = uids.clone();

    let before = run_on_upstream(&k, &upstream, &pods).await;
    stop_upstream(&k, &mut upstream, &pods, &before).await;

    k.start();
    wait_for(
        "this kubelet to serve the running pods",
        START,
        &k,
        || async {
            let mut all = true;
            for (pod, (_, containers)) in pods.iter().zip(PODS) {
                for c in containers {
                    let served = support::served_container(port, pod, c).await;
                    all &= served.is_some_and(|s| s["state"]["running"].is_object());
                }
            }
            all.then_some(())
        },
    )
    .await;
    holds_still(&k, &pods, &before, SYNCS).await;
    assert_eq!(pod_uids(&k, &pods).await, uids, "a pod changed its UID");
    let log = k.log();
    for pod in &pods[1..] {
        assert!(
            log.lines()
                .any(|l| l.contains("adopted the running pod's UID") && l.contains(pod.as_str())),
            "no adoption of {pod}'s UID logged; kubelet log:\n{log}"
        );
    }

    let alpha = manifests(&alpha_uid, BUSYBOX)[0].1.clone();
    swap_restarts_alone(&k, &pods, &before, || {
        k.write_manifest("alpha.yaml", &alpha)
    })
    .await;

    let gamma = manifests(&alpha_uid, BUSYBOX)[2]
        .1
        .replace("sleep 3600", "sleep 3601");
    let new_gamma =
        gamma_replaced(&k, &pods, &uids, || k.write_manifest("gamma.yaml", &gamma)).await;
    let _gamma_guard = k.runtime.pod_guard(&new_gamma);

    uids.push(new_gamma);
    clean_up(&mut k, &uids).await;
}

/// Changes gamma, a static pod without a UID: like upstream, this kubelet gives the edited
/// manifest a new UID, so the old pod stops and a new one (new sandbox) runs, while alpha and
/// beta hold still. Returns gamma's new UID.
async fn gamma_replaced(
    k: &Kubelet,
    pods: &[String],
    uids: &[String],
    change: impl Fn(),
) -> String {
    let others = &pods[..2];
    let before = snapshot(k, others).await;
    change();
    let ready_uids = || async {
        k.sandboxes(&pods[2])
            .await
            .into_iter()
            .filter(|s| s.state == api::PodSandboxState::SandboxReady as i32)
            .map(|s| (s.id, s.metadata.unwrap_or_default().uid))
            .collect::<Vec<_>>()
    };
    let new_uid = wait_for(
        "gamma to run again, alone, under a new UID",
        START,
        k,
        || async {
            let [(sandbox, uid)] = ready_uids().await.try_into().ok()?;
            let worker = k.running(&pods[2]).await.remove("worker")?;
            (uid != uids[2] && worker.pod_sandbox_id == sandbox).then_some(uid)
        },
    )
    .await;
    holds_still(k, others, &before, SYNCS).await;
    let ready: Vec<String> = ready_uids().await.into_iter().map(|(_, uid)| uid).collect();
    assert_eq!(
        ready,
        std::slice::from_ref(&new_uid),
        "gamma's sandbox changed again"
    );
    new_uid
}

/// API pods and the static pods' mirror pods, the node registered with the real kube-apiserver.
#[tokio::test]
async fn api_and_mirror_pods_keep_running_through_a_switch_from_the_upstream_kubelet() {
    let _serial = support::serial().await;
    upstream_kubelet_binary();
    let cluster = Cluster::start(Backend::Real);
    let node = "switch-cluster";
    let mut k = cluster.kubelet(node).with_config("syncFrequency: 2s\n");
    let kubeconfig = k.dir.join("kubelet.kubeconfig");
    let alpha_uid = fresh_uid();
    let _alpha_guard = k.runtime.pod_guard(&alpha_uid);
    // alpha is a static pod (with its mirror pod); beta and gamma come from the API.
    let [(alpha_file, alpha), (_, beta), (_, gamma)] = manifests(&alpha_uid, PAUSE);
    k.write_manifest(alpha_file, &alpha);
    let api_pod = |manifest: &str| {
        manifest
            .replacen(
                "spec:\n",
                &format!(
                    "  namespace: default\nspec:\n  nodeName: {node}\n  automountServiceAccountToken: false\n"
                ),
                1,
            )
    };
    cluster.create(&api_pod(&beta));
    cluster.create(&api_pod(&gamma));
    let pods: Vec<String> = vec![k.pod_name("alpha"), "beta".into(), "gamma".into()];
    let mut upstream = Upstream::start(
        &k,
        &[
            format!("--kubeconfig={}", kubeconfig.display()),
            "--node-ip=127.0.0.1".into(),
        ],
    );
    upstream.pod_uids = vec![alpha_uid.clone()];

    let before = run_on_upstream(&k, &upstream, &pods).await;
    let mirror_uid = |cluster: &Cluster| {
        cluster
            .get("pod", &pods[0], "default")
            .and_then(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
    };
    let mirror = wait_for("the upstream kubelet's mirror pod", START, &k, || async {
        mirror_uid(&cluster)
    })
    .await;
    let api_uids: Vec<String> = ["beta", "gamma"]
        .iter()
        .map(|p| {
            cluster.get("pod", p, "default").unwrap()["metadata"]["uid"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let _api_guards: Vec<_> = api_uids.iter().map(|u| k.runtime.pod_guard(u)).collect();
    upstream.pod_uids.extend(api_uids.iter().cloned());
    stop_upstream(&k, &mut upstream, &pods, &before).await;

    k.start();
    wait_for(
        "this kubelet to report the pods running",
        START,
        &k,
        || async {
            pods.iter()
                .all(|p| {
                    cluster.get("pod", p, "default").is_some_and(|pod| {
                        pod["status"]["containerStatuses"]
                            .as_array()
                            .is_some_and(|cs| cs.iter().all(|c| c["state"]["running"].is_object()))
                    })
                })
                .then_some(())
        },
    )
    .await;
    holds_still(&k, &pods, &before, SYNCS).await;
    assert_eq!(
        mirror_uid(&cluster).as_deref(),
        Some(mirror.as_str()),
        "the mirror pod was replaced"
    );

    let alpha = manifests(&alpha_uid, BUSYBOX)[0].1.clone();
    swap_restarts_alone(&k, &pods, &before, || {
        k.write_manifest("alpha.yaml", &alpha)
    })
    .await;

    let mut all_uids = vec![alpha_uid];
    all_uids.extend(api_uids);
    clean_up(&mut k, &all_uids).await;
}
