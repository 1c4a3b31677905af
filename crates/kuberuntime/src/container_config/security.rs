//! A container's Linux security context (upstream kuberuntime security_context.go,
//! pkg/securitycontext and the seccomp/AppArmor helpers): container settings override the
//! pod's, namespaces follow the sandbox.

use crate::sandbox_config::{namespace_options, selinux_option};
use k8s_openapi::api::core::v1::{AppArmorProfile, Container, Pod, SeccompProfile};
use kubelet_cri::api::{
    Capability, Int64Value, LinuxContainerSecurityContext, SecurityProfile,
    security_profile::ProfileType,
};
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecurityError {
    #[error("localhostProfile must be set if seccompProfile type is Localhost")]
    SeccompLocalhostWithoutProfile,
    #[error("localhostProfile must be set if appArmorProfile type is Localhost")]
    AppArmorLocalhostWithoutProfile,
}

/// Paths the runtime masks in /proc and /sys (pkg/securitycontext, v1.32, kept in sync with
/// moby), unless procMount is Unmasked.
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths the runtime makes read-only, unless procMount is Unmasked.
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The effective security context. `seccomp_profile_root` is `<root dir>/seccomp`, where
/// Localhost profiles are looked up.
pub fn security_context(
    pod: &Pod,
    container: &Container,
    seccomp_profile_root: &Path,
) -> Result<LinuxContainerSecurityContext, SecurityError> {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let csc = container.security_context.as_ref();
    let unmasked = csc.and_then(|c| c.proc_mount.as_deref()) == Some("Unmasked");
    let paths = |defaults: &[&str]| {
        if unmasked {
            Vec::new()
        } else {
            defaults.iter().map(|p| (*p).to_owned()).collect()
        }
    };

    let run_as_user = csc
        .and_then(|c| c.run_as_user)
        .or(psc.and_then(|p| p.run_as_user));
    let run_as_group = csc
        .and_then(|c| c.run_as_group)
        .or(psc.and_then(|p| p.run_as_group));
    let selinux = csc
        .and_then(|c| c.se_linux_options.as_ref())
        .or(psc.and_then(|p| p.se_linux_options.as_ref()));
    let seccomp = csc
        .and_then(|c| c.seccomp_profile.as_ref())
        .or(psc.and_then(|p| p.seccomp_profile.as_ref()));
    let app_armor = csc
        .and_then(|c| c.app_armor_profile.as_ref())
        .or(psc.and_then(|p| p.app_armor_profile.as_ref()));
    let (apparmor, apparmor_profile) = app_armor_profile(app_armor)?;

    #[allow(deprecated)] // apparmor_profile is deprecated in the CRI but still read by runtimes
    Ok(LinuxContainerSecurityContext {
        capabilities: csc
            .and_then(|c| c.capabilities.as_ref())
            .map(|caps| Capability {
                add_capabilities: caps.add.clone().unwrap_or_default(),
                drop_capabilities: caps.drop.clone().unwrap_or_default(),
                ..Default::default()
            }),
        privileged: csc.and_then(|c| c.privileged).unwrap_or(false),
        namespace_options: Some(namespace_options(pod)),
        selinux_options: selinux.map(selinux_option),
        run_as_user: run_as_user.map(|value| Int64Value { value }),
        run_as_group: run_as_group.map(|value| Int64Value { value }),
        readonly_rootfs: csc
            .and_then(|c| c.read_only_root_filesystem)
            .unwrap_or(false),
        supplemental_groups: psc
            .into_iter()
            .flat_map(|p| {
                p.fs_group
                    .into_iter()
                    .chain(p.supplemental_groups.iter().flatten().copied())
            })
            .collect(),
        // allowPrivilegeEscalation: false sets no_new_privs; unset leaves it off.
        no_new_privs: csc
            .and_then(|c| c.allow_privilege_escalation)
            .is_some_and(|allow| !allow),
        masked_paths: paths(DEFAULT_MASKED_PATHS),
        readonly_paths: paths(DEFAULT_READONLY_PATHS),
        seccomp: Some(seccomp_profile(seccomp, seccomp_profile_root)?),
        apparmor,
        apparmor_profile,
        ..Default::default()
    })
}

/// `fieldSeccompProfile` with the kubelet's default `seccompDefault: false`: no profile means
/// Unconfined.
fn seccomp_profile(
    p: Option<&SeccompProfile>,
    root: &Path,
) -> Result<SecurityProfile, SecurityError> {
    let profile = |t: ProfileType, localhost_ref: String| SecurityProfile {
        profile_type: t as i32,
        localhost_ref,
    };
    Ok(
        match p.map(|p| (p.type_.as_str(), p.localhost_profile.as_deref())) {
            Some(("RuntimeDefault", _)) => profile(ProfileType::RuntimeDefault, String::new()),
            Some(("Localhost", Some(path))) if !path.is_empty() => profile(
                ProfileType::Localhost,
                root.join(path).to_string_lossy().into_owned(),
            ),
            Some(("Localhost", _)) => return Err(SecurityError::SeccompLocalhostWithoutProfile),
            _ => profile(ProfileType::Unconfined, String::new()),
        },
    )
}

/// The AppArmor profile field and its deprecated string form; nothing when unset.
fn app_armor_profile(
    p: Option<&AppArmorProfile>,
) -> Result<(Option<SecurityProfile>, String), SecurityError> {
    let Some(p) = p else {
        return Ok((None, String::new()));
    };
    let profile = |t: ProfileType, localhost_ref: &str| SecurityProfile {
        profile_type: t as i32,
        localhost_ref: localhost_ref.to_owned(),
    };
    Ok(match (p.type_.as_str(), p.localhost_profile.as_deref()) {
        ("RuntimeDefault", _) => (
            Some(profile(ProfileType::RuntimeDefault, "")),
            "runtime/default".into(),
        ),
        ("Localhost", Some(name)) if !name.is_empty() => (
            Some(profile(ProfileType::Localhost, name)),
            format!("localhost/{name}"),
        ),
        ("Localhost", _) => return Err(SecurityError::AppArmorLocalhostWithoutProfile),
        _ => (
            Some(profile(ProfileType::Unconfined, "")),
            "unconfined".into(),
        ),
    })
}
