//! Capabilities: containerd's default set, CRI add/drop (with ALL), and "all" meaning the
//! capabilities this process holds (containerd's cap.Current), since a container cannot get
//! more than its runtime has: here CAP_SYS_RESOURCE is outside the bounding set.

use crate::SpecError;
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, LinuxCapabilitiesBuilder};
use std::collections::HashSet;
use std::fs;

/// containerd's defaultUnixCaps.
const DEFAULT: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Capability names by bit number (linux/capability.h).
const BY_BIT: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Parses "NET_ADMIN", "net_admin" or "CAP_NET_ADMIN".
pub(crate) fn parse(name: &str) -> Result<Capability, SpecError> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| SpecError::UnknownCapability(name.to_string()))
}

fn parse_all(names: &[&str]) -> Capabilities {
    names.iter().filter_map(|n| parse(n).ok()).collect()
}

/// containerd's default set.
pub(crate) fn default_set() -> Capabilities {
    parse_all(&DEFAULT)
}

/// The effective capabilities of this process.
pub(crate) fn current() -> Capabilities {
    let mask = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    let names: Vec<&str> = BY_BIT
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1u64 << bit) != 0)
        .map(|(_, n)| *n)
        .collect();
    parse_all(&names)
}

/// The set from the security context's add/drop lists applied to the default set, in
/// containerd's order: ADD ALL, DROP ALL, then each named add, then each named drop.
pub(crate) fn from_cri(
    add: &[String],
    drop: &[String],
    all: &Capabilities,
) -> Result<Capabilities, SpecError> {
    let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
    let mut caps = default_set();
    if add.iter().any(is_all) {
        caps = all.clone();
    }
    if drop.iter().any(is_all) {
        caps.clear();
    }
    for c in add.iter().filter(|c| !is_all(c)) {
        caps.insert(parse(c)?);
    }
    for c in drop.iter().filter(|c| !is_all(c)) {
        caps.remove(&parse(c)?);
    }
    Ok(caps)
}

/// Bounding, effective and permitted are the set; no inheritable or ambient capabilities, as
/// containerd (the meaning of non-root plus capabilities is not settled in Kubernetes).
pub(crate) fn to_oci(caps: &Capabilities) -> Result<LinuxCapabilities, SpecError> {
    LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps.clone())
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(|e| SpecError::Build(e.to_string()))
}
