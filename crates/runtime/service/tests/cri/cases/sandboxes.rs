//! Pod sandboxes: namespaces, network, files, names, filters, stop and remove.

use super::{assert_clean, pod, remove_pod, run_pod, sandbox_status, stop_pod};
use crate::fixture::{Fixture, mounts_under};
use k8s_cri::v1::runtime_service_server::RuntimeService;
use k8s_cri::v1::*;
use runtime_service::Runtime;
use std::path::{Path, PathBuf};
use std::process::Command;
use tonic::{Code, Request};

fn record(status_info: &serde_json::Value, field: &str) -> PathBuf {
    PathBuf::from(
        status_info["record"]["files"][field]
            .as_str()
            .or_else(|| status_info["record"]["namespaces"][field].as_str())
            .unwrap_or_else(|| panic!("no {field} in {status_info}")),
    )
}

async fn info(rt: &Runtime, id: &str) -> serde_json::Value {
    let r = rt
        .pod_sandbox_status(Request::new(PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: true,
        }))
        .await
        .expect("PodSandboxStatus")
        .into_inner();
    serde_json::from_str(&r.info["info"]).expect("info is JSON")
}

fn is_mount(path: &Path) -> bool {
    mounts_under(path).iter().any(|m| Path::new(m) == path)
}

fn nsenter(kind: &str, ns: &Path, args: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--{kind}={}", ns.display()))
        .args(args)
        .output()
        .expect("nsenter");
    assert!(
        out.status.success(),
        "nsenter {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn nat_rules() -> String {
    let tool = runtime_oci::find_binary("iptables-save").expect("iptables-save (Debian iptables)");
    let out = Command::new(tool)
        .args(["-t", "nat"])
        .output()
        .expect("iptables-save");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn list(rt: &Runtime, filter: PodSandboxFilter) -> Vec<PodSandbox> {
    rt.list_pod_sandbox(Request::new(ListPodSandboxRequest {
        filter: Some(filter),
    }))
    .await
    .unwrap()
    .into_inner()
    .items
}

pub fn lifecycle(fx: &Fixture) {
    fx.tokio.block_on(async {
        let rt = Runtime::open(fx.options("sb")).await.expect("open");
        let mut config = pod(fx, "sb1");
        let host_port = 20000 + (std::process::id() % 20000) as i32;
        config.port_mappings = vec![PortMapping {
            protocol: Protocol::Tcp as i32,
            container_port: 80,
            host_port,
            host_ip: "127.0.0.1".into(),
        }];
        let linux = config.linux.as_mut().unwrap();
        linux.sysctls = [("net.ipv4.ping_group_range".to_string(), "0 0".to_string())].into();
        let id = run_pod(&rt, config.clone(), "").await;

        let again = rt
            .run_pod_sandbox(Request::new(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            }))
            .await
            .unwrap_err();
        assert_eq!(again.code(), Code::AlreadyExists, "{again}");
        assert!(again.message().contains("is reserved"), "{again}");
        let bad_handler = rt
            .run_pod_sandbox(Request::new(RunPodSandboxRequest {
                config: Some(pod(fx, "sb-bad")),
                runtime_handler: "nosuch".into(),
            }))
            .await
            .unwrap_err();
        assert!(bad_handler.message().contains("nosuch"), "{bad_handler}");
        assert_eq!(bad_handler.code(), Code::InvalidArgument);

        let status = sandbox_status(&rt, &id).await;
        assert_eq!(status.state, PodSandboxState::SandboxReady as i32);
        let ip = status.network.unwrap().ip;
        assert!(
            ip.starts_with(&fx.subnet),
            "pod IP {ip} not in {}0/24",
            fx.subnet
        );
        assert!(status.created_at > 0);
        assert_eq!(status.labels["app"], "sb1");

        let info = info(&rt, &id).await;
        let (net, uts) = (record(&info, "net"), record(&info, "uts"));
        assert!(is_mount(&net), "{} is pinned", net.display());
        assert_eq!(nsenter("uts", &uts, &["hostname"]), "sb1");
        let addrs = nsenter("net", &net, &["ip", "-o", "-4", "addr", "show", "eth0"]);
        assert!(addrs.contains(&ip), "{addrs}");
        let resolv = std::fs::read_to_string(record(&info, "resolv_conf")).unwrap();
        assert!(
            resolv.contains("nameserver 10.96.0.10") && resolv.contains("options ndots:5"),
            "{resolv}"
        );
        let range = nsenter("net", &net, &["cat", "/proc/sys/net/ipv4/ping_group_range"]);
        assert_eq!(
            range.split_whitespace().collect::<Vec<_>>(),
            ["0", "0"],
            "the sysctl is set"
        );
        assert!(nat_rules().contains(&id), "portmap rules for the host port");
        let shm = record(&info, "shm");
        assert!(is_mount(&shm), "{} is a tmpfs", shm.display());

        let mine = |items: Vec<PodSandbox>| items.iter().filter(|p| p.id == id).count();
        let by_label = PodSandboxFilter {
            label_selector: [("app".into(), "sb1".into())].into(),
            ..Default::default()
        };
        assert_eq!(mine(list(&rt, by_label).await), 1);
        let by_prefix = PodSandboxFilter {
            id: id[..8].into(),
            ..Default::default()
        };
        assert_eq!(mine(list(&rt, by_prefix).await), 1);
        let not_ready = PodSandboxFilter {
            state: Some(PodSandboxStateValue {
                state: PodSandboxState::SandboxNotready as i32,
            }),
            ..Default::default()
        };
        assert_eq!(mine(list(&rt, not_ready.clone()).await), 0);

        stop_pod(&rt, &id[..12]).await;
        assert_eq!(
            sandbox_status(&rt, &id).await.state,
            PodSandboxState::SandboxNotready as i32
        );
        assert_eq!(mine(list(&rt, not_ready).await), 1);
        assert!(!is_mount(&net) && !net.exists(), "the netns is unpinned");
        assert!(!is_mount(&shm), "shm is unmounted");
        assert!(
            !nat_rules().contains(&id),
            "CNI DEL removed the portmap rules"
        );
        stop_pod(&rt, &id).await;

        remove_pod(&rt, &id).await;
        let gone = rt
            .pod_sandbox_status(Request::new(PodSandboxStatusRequest {
                pod_sandbox_id: id.clone(),
                verbose: false,
            }))
            .await
            .unwrap_err();
        assert_eq!(gone.code(), Code::NotFound);
        remove_pod(&rt, &id).await;
        let leases = std::fs::read_dir(fx.path().join("ipam/krs-it"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        assert!(
            !leases.contains(&ip),
            "the IPAM lease of {ip} is released: {leases:?}"
        );
        // The name is free again for the next attempt of the pod.
        let id2 = run_pod(&rt, config, "runc").await;
        remove_pod(&rt, &id2).await;
        assert_clean(fx, "sb");
    });
}

pub fn host_network(fx: &Fixture) {
    fx.tokio.block_on(async {
        let rt = Runtime::open(fx.options("sbhost")).await.expect("open");
        let mut config = pod(fx, "sbhost");
        let options = config
            .linux
            .as_mut()
            .unwrap()
            .security_context
            .as_mut()
            .unwrap()
            .namespace_options
            .as_mut()
            .unwrap();
        options.network = NamespaceMode::Node as i32;
        options.ipc = NamespaceMode::Node as i32;
        let id = run_pod(&rt, config, "").await;
        let status = sandbox_status(&rt, &id).await;
        assert_eq!(status.state, PodSandboxState::SandboxReady as i32);
        assert_eq!(
            status.network.unwrap().ip,
            "",
            "a host-network pod has no pod IP"
        );
        let info = info(&rt, &id).await;
        assert!(info["record"]["namespaces"]["net"].is_null(), "{info}");
        assert_eq!(info["record"]["files"]["shm"], "/dev/shm");
        let host = nix::unistd::gethostname()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let hostname = std::fs::read_to_string(record(&info, "hostname")).unwrap();
        assert_eq!(hostname.trim(), host);
        stop_pod(&rt, &id).await;
        remove_pod(&rt, &id).await;
        assert_clean(fx, "sbhost");
    });
}

pub fn missing_objects(fx: &Fixture) {
    fx.tokio.block_on(async {
        let rt = Runtime::open(fx.options("missing")).await.expect("open");
        stop_pod(&rt, "nosuchsandbox").await;
        remove_pod(&rt, "nosuchsandbox").await;
        rt.stop_container(Request::new(StopContainerRequest {
            container_id: "nosuch".into(),
            timeout: 5,
        }))
        .await
        .expect("StopContainer of a missing container succeeds");
        rt.remove_container(Request::new(RemoveContainerRequest {
            container_id: "nosuch".into(),
        }))
        .await
        .expect("RemoveContainer of a missing container succeeds");
        let err = rt
            .container_status(Request::new(ContainerStatusRequest {
                container_id: "nosuch".into(),
                verbose: false,
            }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        let err = rt
            .start_container(Request::new(StartContainerRequest {
                container_id: "nosuch".into(),
            }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    });
}
