//! Arguments, environment, working directory and user resolution.

use super::{Case, image, process};
use crate::SpecError;
use k8s_cri::v1::{Int64Value, KeyValue};

fn args_of(case: &Case) -> Vec<String> {
    process(&case.spec()).args().clone().expect("args")
}

#[test]
fn cri_command_replaces_entrypoint_and_drops_cmd() {
    let mut c = Case::new();
    c.image = image(Some(&["/ep"]), Some(&["cmd1"]), &[], None, None);
    c.container.command = vec!["/bin/x".into()];
    assert_eq!(args_of(&c), ["/bin/x"]);
    c.container.args = vec!["a".into()];
    assert_eq!(args_of(&c), ["/bin/x", "a"]);
}

#[test]
fn cri_args_alone_replace_cmd_after_entrypoint() {
    let mut c = Case::new();
    c.image = image(Some(&["/ep", "-v"]), Some(&["cmd1"]), &[], None, None);
    c.container.command.clear();
    c.container.args = vec!["x".into(), "y".into()];
    assert_eq!(args_of(&c), ["/ep", "-v", "x", "y"]);
    c.container.args.clear();
    assert_eq!(args_of(&c), ["/ep", "-v", "cmd1"]);
}

#[test]
fn empty_string_entrypoint_means_none_and_no_command_is_an_error() {
    let mut c = Case::new();
    c.image = image(Some(&[""]), Some(&["/bin/sh"]), &[], None, None);
    c.container.command.clear();
    assert_eq!(args_of(&c), ["/bin/sh"]);
    c.image = image(None, None, &[], None, None);
    assert!(matches!(c.build(), Err(SpecError::NoCommand)));
}

#[test]
fn cri_env_overrides_image_env_in_place() {
    let mut c = Case::new();
    c.image = image(
        None,
        None,
        &["PATH=/img/bin", "FOO=image", "KEEP=1"],
        None,
        None,
    );
    c.container.envs = vec![
        KeyValue {
            key: "FOO".into(),
            value: "cri".into(),
        },
        KeyValue {
            key: "BAR".into(),
            value: "2".into(),
        },
    ];
    c.container.tty = true;
    let spec = c.spec();
    let env = process(&spec).env().clone().expect("env");
    assert_eq!(
        env,
        [
            "PATH=/img/bin",
            "TERM=xterm",
            "HOSTNAME=pod-host",
            "FOO=cri",
            "KEEP=1",
            "BAR=2"
        ]
    );
    assert_eq!(process(&spec).terminal(), Some(true));
}

#[test]
fn default_path_when_the_image_sets_none() {
    let c = Case::new();
    let env = process(&c.spec()).env().clone().expect("env");
    assert_eq!(env[0], crate::process::DEFAULT_PATH_ENV);
}

#[test]
fn working_dir_cri_then_image_then_root() {
    let mut c = Case::new();
    assert_eq!(process(&c.spec()).cwd().to_str(), Some("/"));
    c.image = image(None, None, &[], Some("/srv"), None);
    assert_eq!(process(&c.spec()).cwd().to_str(), Some("/srv"));
    c.container.working_dir = "/work".into();
    assert_eq!(process(&c.spec()).cwd().to_str(), Some("/work"));
}

/// A rootfs with users root, alice (1000) and bob (1001), and groups where alice is in staff
/// and bob in staff and video.
fn with_users() -> Case {
    let c = Case::new();
    c.write_rootfs(
        "etc/real-passwd",
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n# comment\nbob:x:1001:1001::/:/bin/sh\n",
    );
    // An absolute symlink must resolve inside the rootfs, never on the host.
    std::os::unix::fs::symlink("/etc/real-passwd", c.rootfs.path().join("etc/passwd"))
        .expect("symlink");
    c.write_rootfs(
        "etc/group",
        "root:x:0:\nalice:x:1000:\nbob:x:1001:\nstaff:x:50:alice,bob\nvideo:x:44:bob\n",
    );
    c
}

fn ids(c: &Case) -> (u32, u32, Vec<u32>) {
    let spec = c.spec();
    let u = process(&spec).user();
    (
        u.uid(),
        u.gid(),
        u.additional_gids().clone().unwrap_or_default(),
    )
}

#[test]
fn no_user_is_root_with_its_group() {
    assert_eq!(ids(&with_users()), (0, 0, vec![0]));
}

#[test]
fn image_user_by_name_uid_and_pairs() {
    let mut c = with_users();
    c.image = image(None, None, &[], None, Some("alice"));
    assert_eq!(ids(&c), (1000, 1000, vec![50, 1000]));
    c.image = image(None, None, &[], None, Some("1001"));
    assert_eq!(ids(&c), (1001, 1001, vec![44, 50, 1001]));
    c.image = image(None, None, &[], None, Some("1001:7"));
    assert_eq!(ids(&c), (1001, 7, vec![7, 44, 50]));
    c.image = image(None, None, &[], None, Some("alice:video"));
    assert_eq!(ids(&c), (1000, 44, vec![44, 50]));
}

#[test]
fn unknown_uid_runs_with_gid_zero() {
    let mut c = with_users();
    c.image = image(None, None, &[], None, Some("4242"));
    assert_eq!(ids(&c), (4242, 0, vec![0]));
}

#[test]
fn cri_user_overrides_image_user() {
    let mut c = with_users();
    c.image = image(None, None, &[], None, Some("alice"));
    c.security().run_as_user = Some(Int64Value { value: 1001 });
    assert_eq!(ids(&c), (1001, 1001, vec![44, 50, 1001]));
    c.security().run_as_group = Some(Int64Value { value: 9 });
    assert_eq!(ids(&c), (1001, 9, vec![9, 44, 50]));
    c.security().run_as_username = "alice".into();
    assert_eq!(ids(&c), (1000, 9, vec![9, 50]));
    c.security().supplemental_groups = vec![5000, 50];
    assert_eq!(ids(&c), (1000, 9, vec![9, 50, 5000]));
}

#[test]
fn user_errors_name_the_user() {
    let mut c = with_users();
    c.image = image(None, None, &[], None, Some("carol"));
    let err = c.build().expect_err("unknown user");
    assert!(err.to_string().contains("carol"), "{err}");
    c.image = image(None, None, &[], None, Some("alice:nogroup"));
    assert!(matches!(c.build(), Err(SpecError::User { .. })));
    c.image = image(None, None, &[], None, None);
    c.security().run_as_group = Some(Int64Value { value: 5 });
    assert!(matches!(c.build(), Err(SpecError::User { .. })));
    c.security().run_as_group = None;
    c.security().run_as_user = Some(Int64Value { value: -1 });
    assert!(matches!(c.build(), Err(SpecError::User { .. })));
}

#[test]
fn no_passwd_file_still_resolves_numeric_users() {
    let mut c = Case::new();
    c.security().run_as_user = Some(Int64Value { value: 33 });
    assert_eq!(ids(&c), (33, 0, vec![0]));
    c.image = image(None, None, &[], None, Some("www"));
    c.security().run_as_user = None;
    assert!(matches!(c.build(), Err(SpecError::User { .. })));
}
