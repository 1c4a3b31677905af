//! The runtime CLI wrapper against a scripted stand-in runtime, and the handler table.

use crate::{DEFAULT_HANDLER, Handlers, OciError, OciRuntime, OciStatus};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A fake runtime that logs its arguments and answers like runc does.
const FAKE: &str = r#"#!/bin/sh
echo "$*" >> "$(dirname "$0")/calls"
cmd=$3
case "$cmd" in
  state)
    if [ "$4" = known ]; then
      echo '{"ociVersion":"1.0.2","id":"known","pid":42,"status":"running","bundle":"/b","rootfs":"/b/rootfs","created":"2026-01-01T00:00:00Z","owner":""}'
    else
      echo 'time="x" level=error msg="container does not exist"' >&2; exit 1
    fi ;;
  delete) [ "$4" = known ] || [ "$5" = known ] || { echo 'container does not exist' >&2; exit 1; } ;;
  kill) echo 'container not running' >&2; exit 1 ;;
  update) cp "$5" "$(dirname "$0")/resources.json" ;;
esac
"#;

fn fake() -> (tempfile::TempDir, OciRuntime) {
    let dir = tempfile::tempdir().expect("tmp");
    let binary = dir.path().join("fake-runtime");
    std::fs::write(&binary, FAKE).expect("script");
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let root = dir.path().join("root");
    (
        dir,
        OciRuntime {
            handler: "fake".into(),
            binary,
            root,
        },
    )
}

fn calls(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("calls")).unwrap_or_default()
}

#[test]
fn create_command_line() {
    let (_dir, rt) = fake();
    let cmd = rt.create_command(
        "c1",
        Path::new("/b"),
        Path::new("/b/pid"),
        Some(Path::new("/s.sock")),
    );
    let args: Vec<_> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let root = rt.root.to_string_lossy().into_owned();
    assert_eq!(
        args,
        [
            "--root",
            &root,
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/b/pid",
            "--console-socket",
            "/s.sock",
            "c1"
        ]
    );
    assert_eq!(cmd.get_program(), rt.binary.as_os_str());
}

#[test]
fn state_parses_json_and_unknown_is_none() {
    let (_dir, rt) = fake();
    let state = rt.state("known").expect("state").expect("known");
    assert_eq!((state.pid, state.status), (42, OciStatus::Running));
    assert_eq!(state.bundle, Path::new("/b"));
    assert!(rt.state("gone").expect("state").is_none());
}

#[test]
fn delete_of_a_missing_container_succeeds_and_errors_carry_stderr() {
    let (dir, rt) = fake();
    rt.delete("gone", false).expect("missing is deleted");
    rt.delete("known", true).expect("delete");
    assert!(calls(dir.path()).contains("delete --force known"));
    let err = rt.kill("known", 9, true).expect_err("not running");
    assert!(
        matches!(&err, OciError::Failed { stderr, .. } if stderr == "container not running"),
        "{err}"
    );
    assert!(calls(dir.path()).contains("kill --all known 9"));
}

#[test]
fn update_passes_linux_resources_json() {
    let (dir, rt) = fake();
    let r = k8s_cri::v1::LinuxContainerResources {
        memory_limit_in_bytes: 1 << 26,
        cpu_shares: 512,
        ..Default::default()
    };
    rt.update("known", &r).expect("update");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("resources.json")).expect("copied"),
    )
    .expect("json");
    assert_eq!(json["memory"]["limit"], 1 << 26);
    assert_eq!(json["cpu"]["shares"], 512);
    assert!(
        json.get("devices").is_none(),
        "update leaves the device rules alone"
    );
}

#[test]
fn handler_table() {
    let (_dir, rt) = fake();
    let runc = OciRuntime {
        handler: "runc".into(),
        binary: "/usr/sbin/runc".into(),
        root: "/r/runc".into(),
    };
    let h = Handlers::new(DEFAULT_HANDLER, [runc.clone(), rt]);
    assert_eq!(h.get("").expect("default"), &runc);
    assert_eq!(h.get("fake").expect("fake").handler, "fake");
    assert_eq!(h.names(), ["fake", "runc"]);
    assert!(
        matches!(h.get("kata"), Err(OciError::UnknownHandler { handler, .. }) if handler == "kata")
    );
    assert_eq!(
        h.get("kata").unwrap_err().to_string(),
        r#"no runtime for "kata" is configured (known: ["fake", "runc"])"#
    );
    assert!(
        !h.recursive_read_only("fake"),
        "a runtime without `features`"
    );
}

#[test]
fn discover_finds_installed_runtimes() {
    let state = tempfile::tempdir().expect("tmp");
    let h = Handlers::discover(state.path());
    let runc = h
        .get("")
        .expect("runc is installed on the test machines (Debian package runc)");
    assert_eq!(runc.handler, "runc");
    assert_eq!(runc.root, state.path().join("runc"));
    assert_eq!(
        h.names().contains(&"crun".to_string()),
        crate::find_binary("crun").is_some()
    );
    // runc 1.1 lists rro in `runc features`; crun 1.8 has no such command.
    assert!(h.recursive_read_only("") && h.recursive_read_only("runc"));
    assert!(!h.recursive_read_only("crun"));
    assert!(!h.recursive_read_only("kata"));
}
