//! Which sysctls a pod may set, and where they live under /proc/sys.
//!
//! Only namespaced sysctls are allowed (runc's list): `net.*` belong to the network namespace,
//! the SysV IPC ones and `fs.mqueue.*` to the IPC namespace. Anything else would change the
//! whole node, so it is refused, naming the sysctl.

use crate::NetworkError;
use std::path::PathBuf;

/// The namespace a sysctl belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SysctlKind {
    Net,
    Ipc,
}

const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// A sysctl checked and resolved to its file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sysctl {
    pub name: String,
    pub kind: SysctlKind,
    /// Relative to /proc/sys.
    pub path: PathBuf,
}

/// Checks `name` (dotted `net.ipv4.ip_forward`, or Kubernetes' slash form
/// `net/ipv4/conf/eth0.1/forwarding` where dots are literal) and finds its kind and file.
pub(crate) fn resolve(name: &str) -> Result<Sysctl, NetworkError> {
    let refuse = |reason: &str| NetworkError::SysctlRefused {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    // The first separator decides the form, as in Kubernetes' sysctl name validation.
    let slash_form = name.find(['.', '/']).map(|i| name.as_bytes()[i]) == Some(b'/');
    let components: Vec<&str> = if slash_form {
        name.split('/').collect()
    } else {
        name.split('.').collect()
    };
    if components.len() < 2 || components.iter().any(|c| c.is_empty() || *c == "..") {
        return Err(refuse("not a valid sysctl name"));
    }
    let dotted = components.join(".");
    let kind = if components[0] == "net" {
        SysctlKind::Net
    } else if IPC_SYSCTLS.contains(&dotted.as_str())
        || (components[0] == "fs" && components[1] == "mqueue")
    {
        SysctlKind::Ipc
    } else {
        return Err(refuse(
            "not a namespaced sysctl (only net.*, kernel.shm*, kernel.msg*, kernel.sem and \
             fs.mqueue.* can be set for a pod)",
        ));
    };
    Ok(Sysctl {
        name: name.to_string(),
        kind,
        path: components.iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_namespaced_sysctls() {
        let s = resolve("net.ipv4.ip_unprivileged_port_start").unwrap();
        assert_eq!(s.kind, SysctlKind::Net);
        assert_eq!(s.path, PathBuf::from("net/ipv4/ip_unprivileged_port_start"));
        assert_eq!(
            resolve("kernel.shm_rmid_forced").unwrap().kind,
            SysctlKind::Ipc
        );
        assert_eq!(resolve("kernel.sem").unwrap().kind, SysctlKind::Ipc);
        assert_eq!(resolve("fs.mqueue.msg_max").unwrap().kind, SysctlKind::Ipc);
    }

    #[test]
    fn slash_form_keeps_dots_literal() {
        let s = resolve("net/ipv4/conf/eth0.1/forwarding").unwrap();
        assert_eq!(s.kind, SysctlKind::Net);
        assert_eq!(s.path, PathBuf::from("net/ipv4/conf/eth0.1/forwarding"));
    }

    #[test]
    fn refuses_node_wide_and_malformed_names() {
        for name in [
            "kernel.hostname",
            "vm.overcommit_memory",
            "kernel.shmfoo",
            "fs.file-max",
            "net",
            "net..ipv4",
            "net/../../etc/passwd",
        ] {
            let err = resolve(name).unwrap_err();
            assert!(
                matches!(&err, NetworkError::SysctlRefused { name: n, .. } if n == name),
                "{name}: {err}"
            );
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
