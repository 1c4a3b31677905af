//! Seccomp: RuntimeDefault is our default profile (data/seccomp-default.json, containerd's
//! default profile written as data), Unconfined is none, Localhost reads an OCI seccomp profile
//! from the given file.

use crate::SpecError;
use k8s_cri::v1::{LinuxContainerSecurityContext, SecurityProfile, security_profile::ProfileType};
use oci_spec::runtime::{
    Arch, Capabilities, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompBuilder,
    LinuxSyscall, LinuxSyscallBuilder,
};
use serde::Deserialize;
use std::path::PathBuf;

const DEFAULT_PROFILE: &str = include_str!("../data/seccomp-default.json");

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: LinuxSeccompAction,
    /// Seccomp architectures by host architecture (Rust's std::env::consts::ARCH).
    architectures: std::collections::BTreeMap<String, Vec<Arch>>,
    syscalls: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    names: Vec<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    args: Vec<LinuxSeccompArg>,
    errno_ret: Option<u32>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    not_arches: Vec<String>,
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    not_caps: Vec<String>,
    min_kernel: Option<String>,
}

/// The profile the security context asks for; None = unconfined. Privileged containers run
/// unconfined whatever they ask, as with containerd.
pub(crate) fn profile(
    security: Option<&LinuxContainerSecurityContext>,
    privileged: bool,
    bounding: &Capabilities,
) -> Result<Option<LinuxSeccomp>, SpecError> {
    if privileged {
        return Ok(None);
    }
    let requested = security.and_then(|s| s.seccomp.clone()).or_else(|| {
        #[allow(deprecated)]
        let path = security
            .map(|s| s.seccomp_profile_path.clone())
            .unwrap_or_default();
        legacy_profile(&path)
    });
    let Some(requested) = requested else {
        return Ok(None);
    };
    match ProfileType::try_from(requested.profile_type) {
        Ok(ProfileType::Unconfined) => Ok(None),
        Ok(ProfileType::RuntimeDefault) => default_profile(bounding, kernel_version()).map(Some),
        Ok(ProfileType::Localhost) => localhost(&requested.localhost_ref).map(Some),
        Err(_) => Err(SpecError::Seccomp(format!(
            "unknown profile type {}",
            requested.profile_type
        ))),
    }
}

/// The deprecated seccomp_profile_path: "runtime/default", "docker/default", "unconfined" or
/// "localhost/PATH".
fn legacy_profile(path: &str) -> Option<SecurityProfile> {
    let (profile_type, localhost_ref) = match path {
        "" => return None,
        "runtime/default" | "docker/default" => (ProfileType::RuntimeDefault, String::new()),
        "unconfined" => (ProfileType::Unconfined, String::new()),
        other => (
            ProfileType::Localhost,
            other
                .strip_prefix("localhost/")
                .unwrap_or(other)
                .to_string(),
        ),
    };
    Some(SecurityProfile {
        profile_type: profile_type as i32,
        localhost_ref,
    })
}

fn localhost(reference: &str) -> Result<LinuxSeccomp, SpecError> {
    let path = PathBuf::from(reference.strip_prefix("localhost/").unwrap_or(reference));
    if !path.is_absolute() {
        return Err(SpecError::Seccomp(format!(
            "localhost profile {reference:?} is not an absolute path"
        )));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| SpecError::Seccomp(format!("cannot read profile {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| SpecError::Seccomp(format!("invalid profile {}: {e}", path.display())))
}

/// Our RuntimeDefault profile for a container with the given bounding set, on this host.
pub(crate) fn default_profile(
    bounding: &Capabilities,
    kernel: (u32, u32),
) -> Result<LinuxSeccomp, SpecError> {
    let profile: Profile = serde_json::from_str(DEFAULT_PROFILE)
        .map_err(|e| SpecError::Seccomp(format!("built-in default profile: {e}")))?;
    let arch = std::env::consts::ARCH;
    let has = |names: &[String]| -> Result<bool, SpecError> {
        for n in names {
            if !bounding.contains(&crate::caps::parse(n)?) {
                return Ok(false);
            }
        }
        Ok(true)
    };
    let mut syscalls: Vec<LinuxSyscall> = Vec::new();
    for rule in profile.syscalls {
        let arch_ok = (rule.arches.is_empty() || rule.arches.iter().any(|a| a == arch))
            && !rule.not_arches.iter().any(|a| a == arch);
        let caps_ok = has(&rule.caps)?
            && (rule.not_caps.is_empty()
                || !rule
                    .not_caps
                    .iter()
                    .map(|c| crate::caps::parse(c))
                    .collect::<Result<Vec<_>, _>>()?
                    .iter()
                    .any(|c| bounding.contains(c)));
        let kernel_ok = rule
            .min_kernel
            .as_deref()
            .is_none_or(|min| parse_version(min) <= kernel);
        if !(arch_ok && caps_ok && kernel_ok) {
            continue;
        }
        let mut builder = LinuxSyscallBuilder::default()
            .names(rule.names)
            .action(rule.action);
        if !rule.args.is_empty() {
            builder = builder.args(rule.args);
        }
        if let Some(errno) = rule.errno_ret {
            builder = builder.errno_ret(errno);
        }
        syscalls.push(
            builder
                .build()
                .map_err(|e| SpecError::Seccomp(e.to_string()))?,
        );
    }
    LinuxSeccompBuilder::default()
        .default_action(profile.default_action)
        .architectures(profile.architectures.get(arch).cloned().unwrap_or_default())
        .syscalls(syscalls)
        .build()
        .map_err(|e| SpecError::Seccomp(e.to_string()))
}

/// "4.8" -> (4, 8); unparsable parts count as 0.
fn parse_version(text: &str) -> (u32, u32) {
    let mut parts = text.split(['.', '-']).map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The running kernel's major.minor.
pub(crate) fn kernel_version() -> (u32, u32) {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| parse_version(r.trim()))
        .unwrap_or((0, 0))
}
