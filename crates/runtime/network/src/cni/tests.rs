//! Cni against fake plugins: shell scripts that record their environment and stdin, and answer
//! what the test wrote next to them.

use super::*;
use k8s_cri::v1::PortMapping;
use serde_json::json;
use std::fs;
use std::os::unix::fs::PermissionsExt;

struct Fixture {
    _temp: tempfile::TempDir,
    conf: PathBuf,
    bin: PathBuf,
    cache: PathBuf,
    log: PathBuf,
}

const SCRIPT: &str = r#"#!/bin/sh
me=$(basename "$0")
stdin=$(cat)
echo "$me $CNI_COMMAND $CNI_IFNAME" >> "$LOG/calls"
echo $$ > "$LOG/$me.pid"
env | grep '^CNI_' | sort > "$LOG/$me-$CNI_COMMAND-$CNI_IFNAME.env"
printf '%s' "$stdin" > "$LOG/$me-$CNI_COMMAND-$CNI_IFNAME.stdin"
[ -f "$0.sleep" ] && sleep "$(cat "$0.sleep")"
[ -f "$0.$CNI_COMMAND.out" ] && cat "$0.$CNI_COMMAND.out"
exit "$(cat "$0.$CNI_COMMAND.exit" 2>/dev/null || echo 0)"
"#;

const RESULT_ONE: &str = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"address":"10.9.0.2/24","interface":0}]}"#;
const RESULT_TWO: &str = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"address":"fd00::2/64","interface":0},{"address":"10.9.0.3/24","interface":0}]}"#;

impl Fixture {
    fn new() -> Fixture {
        let temp = tempfile::tempdir().unwrap();
        let [conf, bin, cache, log] = ["conf", "bin", "cache", "log"].map(|d| temp.path().join(d));
        for dir in [&conf, &bin, &log] {
            fs::create_dir_all(dir).unwrap();
        }
        let script = SCRIPT.replace("$LOG", &log.display().to_string());
        for plugin in ["one", "two"] {
            let path = bin.join(plugin);
            fs::write(&path, &script).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::write(bin.join("one.ADD.out"), RESULT_ONE).unwrap();
        fs::write(bin.join("two.ADD.out"), RESULT_TWO).unwrap();
        fs::write(
            conf.join("10-test.conflist"),
            r#"{"name":"testnet","cniVersion":"1.0.0","plugins":[
                {"type":"one","capabilities":{"portMappings":true}},
                {"type":"two","capabilities":{"bandwidth":true}}]}"#,
        )
        .unwrap();
        Fixture {
            _temp: temp,
            conf,
            bin,
            cache,
            log,
        }
    }

    fn cni(&self) -> Cni {
        // A second, empty dir first: plugins are searched in order and CNI_PATH lists both.
        let empty = self.log.parent().unwrap().join("empty");
        fs::create_dir_all(&empty).unwrap();
        Cni::new(
            self.conf.clone(),
            vec![empty, self.bin.clone()],
            self.cache.clone(),
        )
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.log.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn stdin(&self, call: &str) -> Value {
        serde_json::from_slice(&fs::read(self.log.join(format!("{call}.stdin"))).unwrap()).unwrap()
    }

    fn env(&self, call: &str) -> String {
        fs::read_to_string(self.log.join(format!("{call}.env"))).unwrap()
    }

    fn clear_log(&self) {
        let _ = fs::remove_file(self.log.join("calls"));
    }
}

/// /proc/self/ns/net is an nsfs file, so DEL treats the namespace as present.
fn attachment(netns: &str) -> Attachment {
    Attachment {
        sandbox_id: "sb1".into(),
        netns: PathBuf::from(netns),
        pod_name: "web".into(),
        pod_namespace: "ns1".into(),
        pod_uid: "u-1".into(),
        port_mappings: vec![PortMapping {
            protocol: 0,
            container_port: 80,
            host_port: 8080,
            host_ip: "127.0.0.1".into(),
        }],
        annotations: [(
            "kubernetes.io/ingress-bandwidth".to_string(),
            "1M".to_string(),
        )]
        .into(),
    }
}

#[tokio::test]
async fn setup_runs_the_chain_with_prev_result_and_caches_and_no_loopback_plugin() {
    let f = Fixture::new();
    let att = attachment("/proc/self/ns/net");
    let result = f.cni().setup(&att).await.unwrap();
    assert_eq!(result.ips, ["10.9.0.3", "fd00::2"], "last plugin's result");
    assert_eq!(
        f.calls(),
        ["one ADD eth0", "two ADD eth0"],
        "lo is ours to bring up"
    );

    let env = f.env("one-ADD-eth0");
    let cni_path = format!(
        "CNI_PATH={}:{}",
        f.log.parent().unwrap().join("empty").display(),
        f.bin.display()
    );
    for line in [
        "CNI_COMMAND=ADD",
        "CNI_CONTAINERID=sb1",
        "CNI_NETNS=/proc/self/ns/net",
        "CNI_IFNAME=eth0",
        "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=u-1",
        &cni_path,
    ] {
        assert!(env.lines().any(|l| l == line), "{line} not in\n{env}");
    }
    assert!(
        std::env::var_os("CNI_COMMAND").is_none(),
        "the daemon's environment is never changed"
    );

    let one = f.stdin("one-ADD-eth0");
    assert_eq!(one["name"], "testnet");
    assert_eq!(one["cniVersion"], "1.0.0");
    assert!(one.get("prevResult").is_none());
    assert_eq!(
        one["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}]})
    );
    let two = f.stdin("two-ADD-eth0");
    assert_eq!(
        two["prevResult"],
        serde_json::from_str::<Value>(RESULT_ONE).unwrap()
    );
    assert_eq!(
        two["runtimeConfig"],
        json!({"bandwidth": {"ingressRate": 1_000_000u64, "ingressBurst": u32::MAX}})
    );

    let cached = cache::load(&f.cache.join("sb1.json")).unwrap().unwrap();
    assert_eq!(
        cached.result,
        Some(serde_json::from_str(RESULT_TWO).unwrap())
    );
    assert_eq!(cached.network.name, "testnet");
}

#[tokio::test]
async fn teardown_uses_the_cached_list_in_reverse_and_is_idempotent() {
    let f = Fixture::new();
    let cni = f.cni();
    let att = attachment("/proc/self/ns/net");
    cni.setup(&att).await.unwrap();
    // The conf dir changes after ADD: DEL must still run the list ADD used.
    fs::remove_file(f.conf.join("10-test.conflist")).unwrap();
    fs::write(
        f.conf.join("00-other.conflist"),
        r#"{"name":"other","cniVersion":"1.0.0","plugins":[{"type":"missing"}]}"#,
    )
    .unwrap();
    f.clear_log();
    cni.teardown(&att).await.unwrap();
    assert_eq!(f.calls(), ["two DEL eth0", "one DEL eth0"]);
    let del = f.stdin("one-DEL-eth0");
    assert_eq!(del["name"], "testnet");
    assert_eq!(
        del["prevResult"],
        serde_json::from_str::<Value>(RESULT_TWO).unwrap()
    );
    assert!(f.env("two-DEL-eth0").contains("CNI_COMMAND=DEL"));
    assert!(!f.cache.join("sb1.json").exists());

    f.clear_log();
    let gone = attachment("/nonexistent/netns");
    cni.teardown(&gone).await.unwrap();
    assert!(
        f.calls().is_empty(),
        "no cache and no netns: nothing to run"
    );
}

#[tokio::test]
async fn teardown_of_a_gone_netns_passes_no_netns_and_tolerates_gone_errors() {
    let f = Fixture::new();
    let cni = f.cni();
    cni.setup(&attachment("/proc/self/ns/net")).await.unwrap();
    fs::write(
        f.bin.join("two.DEL.out"),
        r#"{"code":11,"msg":"link not found"}"#,
    )
    .unwrap();
    fs::write(f.bin.join("two.DEL.exit"), "1").unwrap();
    f.clear_log();
    let gone = attachment("/nonexistent/netns");
    cni.teardown(&gone).await.unwrap();
    assert_eq!(f.calls(), ["two DEL eth0", "one DEL eth0"]);
    assert!(f.env("one-DEL-eth0").lines().any(|l| l == "CNI_NETNS="));
    assert!(!f.cache.join("sb1.json").exists());
}

#[tokio::test]
async fn a_real_del_error_keeps_the_cache_for_a_retry() {
    let f = Fixture::new();
    let cni = f.cni();
    let att = attachment("/proc/self/ns/net");
    cni.setup(&att).await.unwrap();
    fs::write(
        f.bin.join("one.DEL.out"),
        r#"{"code":7,"msg":"iptables busy"}"#,
    )
    .unwrap();
    fs::write(f.bin.join("one.DEL.exit"), "1").unwrap();
    let err = cni.teardown(&att).await.unwrap_err();
    assert!(err.to_string().contains("iptables busy"), "{err}");
    assert!(f.cache.join("sb1.json").exists());
    fs::remove_file(f.bin.join("one.DEL.exit")).unwrap();
    cni.teardown(&att).await.unwrap();
    assert!(!f.cache.join("sb1.json").exists());
}

#[tokio::test]
async fn failed_add_names_plugin_and_sandbox_and_rolls_back() {
    let f = Fixture::new();
    fs::write(
        f.bin.join("two.ADD.out"),
        r#"{"cniVersion":"1.0.0","code":7,"msg":"failed to allocate","details":"range full"}"#,
    )
    .unwrap();
    fs::write(f.bin.join("two.ADD.exit"), "1").unwrap();
    let err = f
        .cni()
        .setup(&attachment("/proc/self/ns/net"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("two")
            && text.contains("sb1")
            && text.contains("failed to allocate; range full"),
        "{text}"
    );
    assert_eq!(
        f.calls(),
        [
            "one ADD eth0",
            "two ADD eth0",
            "two DEL eth0",
            "one DEL eth0"
        ]
    );
    assert!(!f.cache.join("sb1.json").exists());
}

#[tokio::test]
async fn stderr_is_the_message_when_stdout_has_no_error() {
    let f = Fixture::new();
    fs::write(
        f.bin.join("one"),
        "#!/bin/sh\necho 'exploded' >&2\nexit 2\n",
    )
    .unwrap();
    let err = f
        .cni()
        .setup(&attachment("/proc/self/ns/net"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("netplugin failed: \"exploded\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_result_without_pod_ip_is_an_error() {
    let f = Fixture::new();
    fs::write(f.bin.join("two.ADD.out"), r#"{"cniVersion":"1.0.0"}"#).unwrap();
    let err = f
        .cni()
        .setup(&attachment("/proc/self/ns/net"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, NetworkError::BadResult { ref plugin, .. } if plugin == "two"),
        "{err}"
    );
}

#[tokio::test]
async fn a_slow_plugin_is_killed_at_the_timeout() {
    let f = Fixture::new();
    fs::write(f.bin.join("one.sleep"), "30").unwrap();
    let cni = f.cni().with_plugin_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = cni
        .setup(&attachment("/proc/self/ns/net"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, NetworkError::PluginTimeout { ref plugin, command: "ADD", .. } if plugin == "one"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The plugin's own child (the sleep) went with it: nothing of its group is left running.
    let group = fs::read_to_string(f.log.join("one.pid"))
        .unwrap()
        .trim()
        .to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while live_members(&group) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "process group {group} still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Processes of process group `group` that are not zombies, from /proc/PID/stat.
fn live_members(group: &str) -> usize {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // Fields after the parenthesised command: state, ppid, pgrp, ...
            let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
            let fields: Vec<&str> = rest.split(' ').collect();
            fields.len() > 2 && fields[2] == group && fields[0] != "Z"
        })
        .count()
}

#[tokio::test]
async fn a_missing_plugin_names_the_dirs() {
    let f = Fixture::new();
    fs::remove_file(f.bin.join("two")).unwrap();
    let err = f
        .cni()
        .setup(&attachment("/proc/self/ns/net"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("\"two\"") && text.contains(&f.bin.display().to_string()),
        "{text}"
    );
}

#[tokio::test]
async fn teardown_without_cache_uses_the_current_config_while_the_netns_lives() {
    let f = Fixture::new();
    let att = attachment("/proc/self/ns/net");
    f.cni().teardown(&att).await.unwrap();
    assert_eq!(f.calls(), ["two DEL eth0", "one DEL eth0"]);
    assert!(f.stdin("one-DEL-eth0").get("prevResult").is_none());
}

#[test]
fn status_reports_the_missing_config() {
    let f = Fixture::new();
    let cni = f.cni();
    assert_eq!(cni.status(), Ok(()));
    fs::remove_file(f.conf.join("10-test.conflist")).unwrap();
    assert_eq!(
        cni.status().unwrap_err(),
        format!(
            "cni config load failed: no network config found in {}",
            f.conf.display()
        )
    );
}

#[test]
fn pod_cidr_is_remembered() {
    let cni = Fixture::new().cni();
    assert_eq!(cni.pod_cidr(), None);
    cni.set_pod_cidr("10.244.1.0/24");
    assert_eq!(cni.clone().pod_cidr().as_deref(), Some("10.244.1.0/24"));
    cni.set_pod_cidr("");
    assert_eq!(cni.pod_cidr(), None);
}

#[tokio::test]
async fn sandbox_ids_cannot_leave_the_cache_dir() {
    let f = Fixture::new();
    for id in ["", "../etc", "a/b", ".hidden"] {
        let mut att = attachment("/proc/self/ns/net");
        att.sandbox_id = id.into();
        let err = f.cni().setup(&att).await.unwrap_err();
        assert!(
            matches!(err, NetworkError::InvalidAttachment { .. }),
            "{id}: {err}"
        );
    }
    assert!(f.calls().is_empty());
}

#[tokio::test]
async fn setup_needs_a_network_namespace() {
    let f = Fixture::new();
    let err = f
        .cni()
        .setup(&attachment("/etc/hostname"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("/etc/hostname is not a network namespace"),
        "{err}"
    );
    assert!(f.calls().is_empty());
    assert!(!f.cache.join("sb1.json").exists());
}

#[test]
fn prev_result_on_del_from_cni_0_4_0() {
    assert!(version_at_least("1.0.0", (0, 4, 0)));
    assert!(version_at_least("0.4.0", (0, 4, 0)));
    assert!(version_at_least("0.4", (0, 4, 0)));
    assert!(!version_at_least("0.3.1", (0, 4, 0)));
    assert!(!version_at_least("", (0, 4, 0)));
}
