//! The files a sandbox gives each of its containers: hostname, resolv.conf, hosts and the
//! /dev/shm tmpfs, in the sandbox's state dir.

use super::Modes;
use crate::ServiceError;
use crate::records::SandboxFiles;
use k8s_cri::v1::{DnsConfig, PodSandboxConfig};
use nix::mount::{MsFlags, mount};
use std::path::{Path, PathBuf};

/// The pod's /dev/shm, as containerd and docker size it.
const SHM_SIZE: &str = "size=65536k";
const HOST_SHM: &str = "/dev/shm";

/// containerd's /etc/hosts for a pod on its own network (the kubelet mounts its own over it for
/// most pods).
const POD_HOSTS: &str = "127.0.0.1\tlocalhost\n\
::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\n\
fe00::0\tip6-mcastprefix\n\
fe00::1\tip6-allnodes\n\
fe00::2\tip6-allrouters\n";

/// Writes the files into `dir` and mounts the shm tmpfs (unless the pod uses the host's IPC
/// namespace, whose /dev/shm it then shares).
pub(crate) fn write(
    dir: &Path,
    config: &PodSandboxConfig,
    modes: Modes,
) -> Result<SandboxFiles, ServiceError> {
    let hostname = dir.join("hostname");
    let name = if modes.host_network || config.hostname.is_empty() {
        host_name()?
    } else {
        config.hostname.clone()
    };
    put(&hostname, format!("{name}\n").as_bytes())?;

    let resolv_conf = dir.join("resolv.conf");
    match config.dns_config.as_ref().filter(|d| !is_empty(d)) {
        Some(dns) => put(&resolv_conf, resolv_text(dns).as_bytes())?,
        None => copy("/etc/resolv.conf", &resolv_conf)?,
    }

    let hosts = dir.join("hosts");
    if modes.host_network {
        copy("/etc/hosts", &hosts)?;
    } else {
        put(&hosts, POD_HOSTS.as_bytes())?;
    }

    let shm = if modes.host_ipc {
        PathBuf::from(HOST_SHM)
    } else {
        let shm = shm_dir(dir);
        std::fs::create_dir_all(&shm).map_err(ServiceError::io("create", &shm))?;
        mount(
            Some("shm"),
            &shm,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(format!("mode=1777,{SHM_SIZE}").as_str()),
        )
        .map_err(|errno| ServiceError::Io {
            op: "mount tmpfs on",
            path: shm.clone(),
            source: errno.into(),
        })?;
        shm
    };
    Ok(SandboxFiles {
        hostname: Some(hostname),
        resolv_conf: Some(resolv_conf),
        hosts: Some(hosts),
        shm: Some(shm),
    })
}

/// Where the sandbox's own shm tmpfs is mounted (never the host's /dev/shm).
pub(crate) fn shm_dir(dir: &Path) -> PathBuf {
    dir.join("shm")
}

fn is_empty(dns: &DnsConfig) -> bool {
    dns.servers.is_empty() && dns.searches.is_empty() && dns.options.is_empty()
}

/// resolv.conf from the CRI DNSConfig, in containerd's layout.
pub(crate) fn resolv_text(dns: &DnsConfig) -> String {
    let mut text = String::new();
    if !dns.searches.is_empty() {
        text += &format!("search {}\n", dns.searches.join(" "));
    }
    for server in &dns.servers {
        text += &format!("nameserver {server}\n");
    }
    if !dns.options.is_empty() {
        text += &format!("options {}\n", dns.options.join(" "));
    }
    text
}

fn host_name() -> Result<String, ServiceError> {
    nix::unistd::gethostname()
        .map_err(|errno| ServiceError::Io {
            op: "read the hostname",
            path: PathBuf::from("/proc/sys/kernel/hostname"),
            source: errno.into(),
        })
        .map(|name| name.to_string_lossy().into_owned())
}

fn put(path: &Path, bytes: &[u8]) -> Result<(), ServiceError> {
    std::fs::write(path, bytes).map_err(ServiceError::io("write", path))
}

fn copy(from: &str, to: &Path) -> Result<(), ServiceError> {
    let bytes = std::fs::read(from).map_err(ServiceError::io("read", from))?;
    put(to, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_from_dns_config() {
        let dns = DnsConfig {
            servers: vec!["10.96.0.10".into(), "1.1.1.1".into()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_text(&dns),
            "search default.svc.cluster.local svc.cluster.local\n\
             nameserver 10.96.0.10\nnameserver 1.1.1.1\noptions ndots:5\n"
        );
        assert!(is_empty(&DnsConfig::default()));
    }
}
