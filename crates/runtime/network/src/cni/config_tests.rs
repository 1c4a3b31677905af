use super::*;
use serde_json::json;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn missing_or_empty_dir_has_no_network_config() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert_eq!(
        load_first(&missing).unwrap_err(),
        format!("no network config found in {}", missing.display())
    );
    write(dir.path(), "README", "not a config");
    std::fs::create_dir(dir.path().join("sub.conf")).unwrap();
    assert_eq!(
        load_first(dir.path()).unwrap_err(),
        format!("no network config found in {}", dir.path().display())
    );
}

#[test]
fn first_file_by_name_wins() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "20-b.conflist",
        r#"{"name":"b","cniVersion":"1.0.0","plugins":[{"type":"bridge"},{"type":"portmap"}]}"#,
    );
    write(
        dir.path(),
        "10-a.conflist",
        r#"{"name":"a","cniVersion":"0.4.0","plugins":[{"type":"ptp"}]}"#,
    );
    let list = load_first(dir.path()).unwrap();
    assert_eq!(list.name, "a");
    assert_eq!(list.cni_version, "0.4.0");
    assert_eq!(list.plugins.len(), 1);
    assert_eq!(list.plugin_type(0), "ptp");
    assert_eq!(list.source, dir.path().join("10-a.conflist"));

    std::fs::remove_file(dir.path().join("10-a.conflist")).unwrap();
    let list = load_first(dir.path()).unwrap();
    assert_eq!(list.name, "b");
    assert_eq!(
        (list.plugin_type(0), list.plugin_type(1)),
        ("bridge", "portmap")
    );
}

#[test]
fn single_conf_is_wrapped_as_a_list() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "05-single.conf",
        r#"{"name":"one","cniVersion":"0.3.1","type":"bridge","bridge":"br9"}"#,
    );
    write(
        dir.path(),
        "10-later.conflist",
        r#"{"name":"x","plugins":[{"type":"ptp"}]}"#,
    );
    let list = load_first(dir.path()).unwrap();
    assert_eq!(list.name, "one");
    assert_eq!(list.cni_version, "0.3.1");
    assert_eq!(list.plugins.len(), 1);
    assert_eq!(list.plugins[0]["bridge"], "br9");
}

#[test]
fn broken_first_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (text, reason) in [
        ("{", "error parsing configuration list"),
        (r#"{"plugins":[{"type":"x"}]}"#, "no name"),
        (r#"{"name":"n"}"#, "no 'plugins' key"),
        (r#"{"name":"n","plugins":[]}"#, "no plugins in list"),
        (
            r#"{"name":"n","plugins":[{"bridge":"b"}]}"#,
            "missing 'type'",
        ),
        (
            r#"{"name":"n","plugins":[{"type":"../../bin/sh"}]}"#,
            "invalid plugin type",
        ),
    ] {
        write(dir.path(), "10-bad.conflist", text);
        let err = load_first(dir.path()).unwrap_err();
        assert!(err.contains("10-bad.conflist"), "{err}");
        assert!(err.contains(reason), "{text}: {err}");
    }
    write(dir.path(), "00-bad.json", r#"{"name":"n"}"#);
    let err = load_first(dir.path()).unwrap_err();
    assert!(
        err.contains("00-bad.json") && err.contains("missing 'type'"),
        "{err}"
    );
}

#[test]
fn netconf_injects_name_version_prev_result_and_declared_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "10.conflist",
        r#"{"name":"net","cniVersion":"1.0.0","plugins":[
            {"type":"bridge","name":"ignored","cniVersion":"0.1.0"},
            {"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false},
             "runtimeConfig":{"stale":1}}]}"#,
    );
    let list = load_first(dir.path()).unwrap();
    let mut caps = Map::new();
    caps.insert("portMappings".into(), json!([{"hostPort": 80}]));
    caps.insert("bandwidth".into(), json!({"ingressRate": 1000}));

    let first = list.netconf(0, None, &caps);
    assert_eq!(
        first,
        json!({"type":"bridge","name":"net","cniVersion":"1.0.0"})
    );

    let prev = json!({"cniVersion":"1.0.0","ips":[{"address":"10.1.0.2/24"}]});
    let second = list.netconf(1, Some(&prev), &caps);
    assert_eq!(second["prevResult"], prev);
    assert_eq!(
        second["runtimeConfig"],
        json!({"portMappings":[{"hostPort":80}]}),
        "only enabled capabilities, replacing what the file had"
    );
}
