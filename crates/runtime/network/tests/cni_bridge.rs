//! CNI against Debian's real plugins (bridge, host-local, portmap, bandwidth) in
//! pinned network namespaces.

mod common;

use common::*;
use k8s_cri::v1::{PortMapping, Protocol};
use runtime_network::{Attachment, Cni, PinRequest, PinnedNamespaces, pin, unpin};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Tears down, unpins and deletes the test's bridge on drop, also when an assertion failed.
struct Cleanup {
    cni: Cni,
    bridge: String,
    pods: Vec<(Attachment, PinnedNamespaces)>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let cni = self.cni.clone();
        let pods = std::mem::take(&mut self.pods);
        // Drop runs inside the test's runtime: tear down from a thread with its own.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            for (attachment, pinned) in pods {
                if let Err(err) = rt.block_on(cni.teardown(&attachment)) {
                    eprintln!("cleanup teardown {}: {err}", attachment.sandbox_id);
                }
                if let Err(err) = unpin(&pinned) {
                    eprintln!("cleanup unpin: {err}");
                }
            }
        })
        .join()
        .unwrap();
        let _ = std::process::Command::new(tool("ip"))
            .args(["link", "del", &self.bridge])
            .status();
    }
}

struct Net {
    _temp: tempfile::TempDir,
    root: PathBuf,
    data_dir: PathBuf,
    name: String,
    bridge: String,
    subnet_prefix: String,
}

/// A bridge name and /24 unique to this test process, so parallel runs do not collide.
fn network(temp: tempfile::TempDir) -> Net {
    let pid = std::process::id();
    let root = temp.path().to_path_buf();
    let data_dir = root.join("ipam");
    let name = format!("rtnet-{pid}");
    let bridge = format!("rtn{:x}", pid);
    let subnet_prefix = format!("10.231.{}", pid % 250);
    std::fs::create_dir_all(root.join("conf")).unwrap();
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": format!("{subnet_prefix}.0/24")}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": data_dir,
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "bandwidth", "capabilities": {"bandwidth": true}}
        ]
    });
    std::fs::write(root.join("conf/10-test.conflist"), conflist.to_string()).unwrap();
    Net {
        _temp: temp,
        root,
        data_dir,
        name,
        bridge,
        subnet_prefix,
    }
}

fn attachment(id: &str, netns: &Path, host_port: i32) -> Attachment {
    Attachment {
        sandbox_id: id.into(),
        netns: netns.to_path_buf(),
        pod_name: format!("pod-{id}"),
        pod_namespace: "default".into(),
        pod_uid: format!("uid-{id}"),
        port_mappings: vec![PortMapping {
            protocol: Protocol::Tcp as i32,
            container_port: 80,
            host_port,
            host_ip: "127.0.0.1".into(),
        }],
        annotations: BTreeMap::new(),
    }
}

fn nat_rules() -> String {
    run(&tool("iptables-save"), &["-t", "nat"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_host_local_portmap_setup_and_teardown() {
    require_root();
    require_plugins(&["bridge", "host-local", "portmap", "bandwidth"]);
    let net = network(tempfile::tempdir().unwrap());
    let cni = Cni::new(
        net.root.join("conf"),
        vec![PathBuf::from(CNI_BIN)],
        net.root.join("cache"),
    );
    cni.status().unwrap();
    let mut cleanup = Cleanup {
        cni: cni.clone(),
        bridge: net.bridge.clone(),
        pods: Vec::new(),
    };
    let netns_request = PinRequest {
        net: true,
        ..Default::default()
    };
    let port_base = 20000 + (std::process::id() % 20000) as i32;
    let mut pods = Vec::new();
    for n in 0..2 {
        let id = format!("sb{n}x{}", std::process::id());
        let pinned = pin(&net.root.join(&id), &netns_request).unwrap();
        let mut att = attachment(&id, pinned.net.as_ref().unwrap(), port_base + n);
        if n == 0 {
            att.annotations = BTreeMap::from([
                ("kubernetes.io/ingress-bandwidth".into(), "1234k".into()),
                ("kubernetes.io/egress-bandwidth".into(), "2345k".into()),
            ]);
        }
        cleanup.pods.push((att.clone(), pinned.clone()));
        pods.push((att, pinned));
    }

    // Two pods at once: distinct addresses from the one range.
    let (a, b) = tokio::join!(cni.setup(&pods[0].0), cni.setup(&pods[1].0));
    let results = [a.unwrap(), b.unwrap()];
    assert_ne!(results[0].ips, results[1].ips);

    for ((att, pinned), result) in pods.iter().zip(&results) {
        let netns = pinned.net.as_ref().unwrap();
        let ip = &results_ip(result);
        assert!(ip.starts_with(&format!("{}.", net.subnet_prefix)), "{ip}");
        let eth0 = run_in(
            "net",
            netns,
            "ip",
            &["-o", "-4", "addr", "show", "dev", "eth0"],
        );
        assert!(eth0.contains(&format!("inet {ip}/24")), "{eth0}");
        let lo = run_in("net", netns, "ip", &["-o", "link", "show", "lo"]);
        assert!(lo.contains(",UP"), "lo is up: {lo}");
        let lease = net.data_dir.join(&net.name).join(ip);
        let holder = std::fs::read_to_string(&lease).unwrap();
        assert!(holder.starts_with(&att.sandbox_id), "{holder}");
        // The host reaches the pod over the bridge, and through its host port (portmap).
        let server = serve_in(netns, 80, 2, "hello from the pod");
        assert_eq!(
            fetch(format!("{ip}:80").parse().unwrap()),
            "hello from the pod"
        );
        let host_port = att.port_mappings[0].host_port;
        assert_eq!(
            fetch(format!("127.0.0.1:{host_port}").parse().unwrap()),
            "hello from the pod"
        );
        server.join().unwrap();
        assert!(
            nat_rules().contains(&att.sandbox_id),
            "portmap rules for {}",
            att.sandbox_id
        );
        assert!(
            net.root
                .join("cache")
                .join(format!("{}.json", att.sandbox_id))
                .is_file()
        );
    }

    // bandwidth shaped pod 0: tbf on its host veth (ingress) and on an ifb (egress), at rates
    // odd enough not to be anybody else's.
    let shaping = run(&tool("tc"), &["qdisc", "show"]);
    assert!(
        shaping.contains("rate 1234Kbit") && shaping.contains("rate 2345Kbit"),
        "{shaping}"
    );

    // The conf dir changes: teardown still uses what ADD used.
    std::fs::remove_file(net.root.join("conf/10-test.conflist")).unwrap();
    assert!(
        cni.status()
            .unwrap_err()
            .contains("no network config found")
    );

    for ((att, pinned), result) in pods.iter().zip(&results) {
        let netns = pinned.net.as_ref().unwrap();
        cni.teardown(att).await.unwrap();
        let ip = results_ip(result);
        assert!(
            !net.data_dir.join(&net.name).join(&ip).exists(),
            "IP {ip} released"
        );
        let links = run_in("net", netns, "ip", &["-o", "link"]);
        assert!(!links.contains("eth0"), "{links}");
        assert!(!nat_rules().contains(&att.sandbox_id), "portmap rules gone");
        assert!(
            !net.root
                .join("cache")
                .join(format!("{}.json", att.sandbox_id))
                .exists()
        );
        cni.teardown(att).await.unwrap();
        unpin(pinned).unwrap();
        cni.teardown(att).await.unwrap();
        unpin(pinned).unwrap();
    }
    let shaping = run(&tool("tc"), &["qdisc", "show"]);
    assert!(
        !shaping.contains("rate 1234Kbit") && !shaping.contains("rate 2345Kbit"),
        "{shaping}"
    );
    cleanup.pods.clear();
}

fn results_ip(result: &runtime_network::NetworkResult) -> String {
    assert_eq!(result.ips.len(), 1, "{result:?}");
    result.ips[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_after_the_netns_is_gone_releases_the_ip() {
    require_root();
    require_plugins(&["bridge", "host-local", "portmap", "bandwidth"]);
    let net = network(tempfile::tempdir().unwrap());
    // A bridge of its own: the two tests of this binary run in parallel.
    let bridge = format!("{}g", net.bridge);
    let conf = net.root.join("conf/10-test.conflist");
    let text = std::fs::read_to_string(&conf).unwrap();
    let text = text
        .replace(&format!("\"{}\"", net.bridge), &format!("\"{bridge}\""))
        .replace(
            &format!("{}.0/24", net.subnet_prefix),
            &format!("10.232.{}.0/24", std::process::id() % 250),
        );
    std::fs::write(&conf, text).unwrap();
    let cni = Cni::new(
        net.root.join("conf"),
        vec![PathBuf::from(CNI_BIN)],
        net.root.join("cache"),
    );
    let mut cleanup = Cleanup {
        cni: cni.clone(),
        bridge,
        pods: Vec::new(),
    };
    let id = format!("gone{}", std::process::id());
    let pinned = pin(
        &net.root.join(&id),
        &PinRequest {
            net: true,
            ..Default::default()
        },
    )
    .unwrap();
    let att = attachment(&id, pinned.net.as_ref().unwrap(), 0);
    cleanup.pods.push((att.clone(), pinned.clone()));
    let ip = results_ip(&cni.setup(&att).await.unwrap());
    assert!(net.data_dir.join(&net.name).join(&ip).exists());

    // The namespace goes first (a crash, or a stop that unpinned before DEL).
    unpin(&pinned).unwrap();
    cni.teardown(&att).await.unwrap();
    assert!(
        !net.data_dir.join(&net.name).join(&ip).exists(),
        "IP {ip} released"
    );
    cni.teardown(&att).await.unwrap();
    cleanup.pods.clear();
}
