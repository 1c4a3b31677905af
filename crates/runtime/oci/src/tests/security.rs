//! Capabilities, privileged, read-only rootfs, masked and read-only paths, seccomp.

use super::{Case, linux, mount, options, process};
use crate::SpecError;
use k8s_cri::v1::{Capability as CriCaps, SecurityProfile, security_profile::ProfileType};
use oci_spec::runtime::{Capabilities, Capability, LinuxSeccompAction, Spec};

fn caps(spec: &Spec) -> Capabilities {
    let c = process(spec).capabilities().clone().expect("capabilities");
    let bounding = c.bounding().clone().expect("bounding");
    assert_eq!(c.effective().as_ref(), Some(&bounding));
    assert_eq!(c.permitted().as_ref(), Some(&bounding));
    assert!(c.ambient().as_ref().is_none_or(|a| a.is_empty()));
    bounding
}

fn set_caps(c: &mut Case, add: &[&str], drop: &[&str]) {
    c.security().capabilities = Some(CriCaps {
        add_capabilities: add.iter().map(|s| s.to_string()).collect(),
        drop_capabilities: drop.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    });
}

#[test]
fn default_capabilities_are_containerds() {
    let got = caps(&Case::new().spec());
    assert_eq!(got, crate::caps::default_set());
    assert_eq!(got.len(), 14);
    assert!(got.contains(&Capability::NetBindService));
    assert!(!got.contains(&Capability::SysAdmin));
}

#[test]
fn add_and_drop_named_capabilities() {
    let mut c = Case::new();
    set_caps(&mut c, &["NET_ADMIN", "sys_time"], &["KILL", "CAP_CHOWN"]);
    let got = caps(&c.spec());
    assert!(got.contains(&Capability::NetAdmin) && got.contains(&Capability::SysTime));
    assert!(!got.contains(&Capability::Kill) && !got.contains(&Capability::Chown));
    assert_eq!(got.len(), 14);
}

#[test]
fn add_all_and_drop_all() {
    let mut c = Case::new();
    set_caps(&mut c, &["ALL"], &["CHOWN"]);
    let mut expected = crate::caps::current();
    expected.remove(&Capability::Chown);
    assert_eq!(caps(&c.spec()), expected);
    set_caps(&mut c, &["CHOWN"], &["ALL"]);
    assert_eq!(caps(&c.spec()), Capabilities::from([Capability::Chown]));
}

#[test]
fn unknown_capability_is_refused() {
    let mut c = Case::new();
    set_caps(&mut c, &["NOT_A_CAP"], &[]);
    assert!(matches!(c.build(), Err(SpecError::UnknownCapability(n)) if n == "NOT_A_CAP"));
}

#[test]
fn privileged_needs_a_privileged_sandbox() {
    let mut c = Case::new();
    c.security().privileged = true;
    assert!(matches!(c.build(), Err(SpecError::PrivilegedNotAllowed)));
}

#[test]
fn privileged_gets_all_caps_devices_and_no_confinement() {
    let mut c = Case::new();
    c.sandbox_security().privileged = true;
    c.security().privileged = true;
    c.security().seccomp = Some(SecurityProfile {
        profile_type: ProfileType::RuntimeDefault as i32,
        ..Default::default()
    });
    let spec = c.spec();
    assert_eq!(caps(&spec), crate::caps::current());
    let l = linux(&spec);
    assert!(l.masked_paths().as_ref().is_none_or(|p| p.is_empty()));
    assert!(l.readonly_paths().as_ref().is_none_or(|p| p.is_empty()));
    assert!(l.seccomp().is_none());
    let devices = l.devices().clone().expect("devices");
    assert!(
        devices
            .iter()
            .any(|d| d.path().to_str() == Some("/dev/null"))
    );
    let rules = l
        .resources()
        .as_ref()
        .and_then(|r| r.devices().clone())
        .expect("rules");
    assert_eq!(rules.len(), 1);
    assert!(rules[0].allow() && rules[0].major().is_none());
    assert!(options(mount(&spec, "/sys").expect("sysfs")).contains(&"rw".to_string()));
    assert!(options(mount(&spec, "/sys/fs/cgroup").expect("cgroup")).contains(&"rw".to_string()));
}

#[test]
fn unprivileged_default_device_rules_deny_then_allow_basics() {
    let spec = Case::new().spec();
    let rules = linux(&spec)
        .resources()
        .as_ref()
        .and_then(|r| r.devices().clone())
        .expect("rules");
    assert!(!rules[0].allow() && rules[0].major().is_none());
    assert!(
        rules
            .iter()
            .any(|r| r.allow() && r.major() == Some(1) && r.minor() == Some(3))
    );
    assert!(
        rules
            .iter()
            .any(|r| r.allow() && r.major() == Some(136) && r.minor().is_none())
    );
    assert!(options(mount(&spec, "/sys").expect("sysfs")).contains(&"ro".to_string()));
}

#[test]
fn readonly_rootfs_and_no_new_privs() {
    let mut c = Case::new();
    let hosts = c.rootfs.path().join("hosts-file");
    std::fs::write(&hosts, "127.0.0.1 localhost\n").expect("hosts");
    c.files.hosts = Some(hosts);
    c.security().readonly_rootfs = true;
    c.security().no_new_privs = true;
    let spec = c.spec();
    assert_eq!(spec.root().as_ref().and_then(|r| r.readonly()), Some(true));
    assert!(options(mount(&spec, "/etc/hosts").expect("hosts")).contains(&"ro".to_string()));
    assert_eq!(process(&spec).no_new_privileges(), Some(true));
    assert_eq!(
        process(&Case::new().spec()).no_new_privileges(),
        Some(false)
    );
}

#[test]
fn masked_and_readonly_paths_given_or_default() {
    let mut c = Case::new();
    let spec = c.spec();
    let masked = linux(&spec).masked_paths().clone().expect("masked");
    assert!(masked.contains(&"/proc/kcore".to_string()) && masked.len() == 11);
    let ro = linux(&spec).readonly_paths().clone().expect("readonly");
    assert!(ro.contains(&"/proc/sys".to_string()) && ro.len() == 5);
    c.security().masked_paths = vec!["/proc/x".into()];
    c.security().readonly_paths = vec!["/proc/y".into()];
    let spec = c.spec();
    assert_eq!(
        linux(&spec).masked_paths().clone().expect("masked"),
        ["/proc/x"]
    );
    assert_eq!(
        linux(&spec).readonly_paths().clone().expect("ro"),
        ["/proc/y"]
    );
}

fn seccomp_case(profile_type: ProfileType, localhost_ref: &str) -> Case {
    let mut c = Case::new();
    c.security().seccomp = Some(SecurityProfile {
        profile_type: profile_type as i32,
        localhost_ref: localhost_ref.into(),
    });
    c
}

#[test]
fn seccomp_runtime_default_follows_capabilities() {
    let spec = seccomp_case(ProfileType::RuntimeDefault, "").spec();
    let s = linux(&spec).seccomp().clone().expect("seccomp");
    assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert!(s.architectures().as_ref().is_some_and(|a| !a.is_empty()));
    let rules = s.syscalls().clone().expect("syscalls");
    let allows = |name: &str| {
        rules.iter().any(|r| {
            r.names().iter().any(|n| n == name)
                && r.action() == LinuxSeccompAction::ScmpActAllow
                && r.args().as_ref().is_none_or(|a| a.is_empty())
        })
    };
    assert!(allows("read") && allows("execve"));
    assert!(!allows("mount") && !allows("clone"));
    // Without CAP_SYS_ADMIN: clone only without namespace flags, clone3 fails with ENOSYS.
    assert!(
        rules
            .iter()
            .any(|r| r.names() == &["clone"] && r.args().is_some())
    );
    assert!(
        rules
            .iter()
            .any(|r| r.names() == &["clone3"] && r.errno_ret() == Some(38))
    );

    let mut c = seccomp_case(ProfileType::RuntimeDefault, "");
    set_caps(&mut c, &["SYS_ADMIN"], &[]);
    let spec = c.spec();
    let rules = linux(&spec)
        .seccomp()
        .clone()
        .expect("seccomp")
        .syscalls()
        .clone()
        .expect("rules");
    assert!(rules.iter().any(|r| r.names().iter().any(|n| n == "mount")));
    assert!(
        !rules
            .iter()
            .any(|r| r.names() == &["clone3"] && r.errno_ret().is_some())
    );
}

#[test]
fn seccomp_unconfined_and_unset_mean_none() {
    assert!(
        linux(&seccomp_case(ProfileType::Unconfined, "").spec())
            .seccomp()
            .is_none()
    );
    assert!(linux(&Case::new().spec()).seccomp().is_none());
}

#[test]
fn seccomp_localhost_reads_the_profile_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("profile.json");
    std::fs::write(
        &file,
        r#"{"defaultAction":"SCMP_ACT_LOG","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .expect("profile");
    let spec = seccomp_case(ProfileType::Localhost, file.to_str().expect("utf8")).spec();
    let s = linux(&spec).seccomp().clone().expect("seccomp");
    assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActLog);
    let missing = dir.path().join("missing.json");
    let err = seccomp_case(ProfileType::Localhost, missing.to_str().expect("utf8"))
        .build()
        .expect_err("missing profile");
    assert!(err.to_string().contains("missing.json"), "{err}");
    assert!(matches!(
        seccomp_case(ProfileType::Localhost, "relative.json").build(),
        Err(SpecError::Seccomp(_))
    ));
}

#[test]
fn negative_oom_score_adj_is_raised_to_zero() {
    let mut c = Case::new();
    let r = c
        .container
        .linux
        .get_or_insert_with(Default::default)
        .resources
        .get_or_insert_with(Default::default);
    r.oom_score_adj = -997;
    assert_eq!(process(&c.spec()).oom_score_adj(), Some(0));
    c.container
        .linux
        .as_mut()
        .and_then(|l| l.resources.as_mut())
        .expect("res")
        .oom_score_adj = 500;
    assert_eq!(process(&c.spec()).oom_score_adj(), Some(500));
}
