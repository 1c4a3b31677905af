//! A container's mounts (upstream kubelet_pods.go `makeMounts`, `makeHostsMount` and
//! kuberuntime `makeMounts`): its volumes, the kubelet-managed /etc/hosts, and the file behind
//! its termination message path; and its block volumes' devices (kuberuntime `makeDevices`).

use k8s_openapi::api::core::v1::{Container, HostAlias};
use kubelet_cri::api::{Device, Mount, MountPropagation};
use kubelet_volumes::{HostDevice, HostMount, Propagation};
use std::fmt::Write as _;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tracing::error;

pub const ETC_HOSTS_PATH: &str = "/etc/hosts";
/// Where a host-network pod's hosts file comes from (upstream hard-codes it too).
const NODE_HOSTS_FILE: &str = "/etc/hosts";
const MANAGED_HOSTS_HEADER: &str = "# Kubernetes-managed hosts file.\n";
const MANAGED_HOSTS_HEADER_HOST_NETWORK: &str = "# Kubernetes-managed hosts file (host network).\n";

pub(crate) fn cri_device(d: &HostDevice) -> Device {
    Device {
        container_path: d.container_path.clone(),
        host_path: d.host_path.display().to_string(),
        permissions: d.permissions.to_string(),
    }
}

pub(crate) fn cri_mount(m: &HostMount) -> Mount {
    let propagation = match m.propagation {
        Propagation::None => MountPropagation::PropagationPrivate,
        Propagation::HostToContainer => MountPropagation::PropagationHostToContainer,
        Propagation::Bidirectional => MountPropagation::PropagationBidirectional,
    };
    Mount {
        container_path: m.container_path.clone(),
        host_path: m.host_path.to_string_lossy().into_owned(),
        readonly: m.read_only,
        propagation: propagation as i32,
        ..Default::default()
    }
}

/// Whether the container gets the managed /etc/hosts: only once the pod has an IP, and not
/// when the container mounts a volume there itself.
pub(crate) fn wants_etc_hosts(container: &Container, pod_ips: &[String]) -> bool {
    !pod_ips.is_empty()
        && !container
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == ETC_HOSTS_PATH)
}

/// What the managed hosts file holds, per upstream `managedHostsFileContent`.
pub fn managed_hosts_content(
    pod_ips: &[String],
    hostname: &str,
    domain: &str,
    aliases: &[HostAlias],
) -> String {
    let mut s = String::from(MANAGED_HOSTS_HEADER);
    s.push_str("127.0.0.1\tlocalhost\n");
    s.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    s.push_str("fe00::0\tip6-localnet\n");
    s.push_str("fe00::0\tip6-mcastprefix\n");
    s.push_str("fe00::1\tip6-allnodes\n");
    s.push_str("fe00::2\tip6-allrouters\n");
    for ip in pod_ips {
        if domain.is_empty() {
            let _ = writeln!(s, "{ip}\t{hostname}");
        } else {
            let _ = writeln!(s, "{ip}\t{hostname}.{domain}\t{hostname}");
        }
    }
    s.push_str(&alias_entries(aliases));
    s
}

fn alias_entries(aliases: &[HostAlias]) -> String {
    if aliases.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n# Entries added by HostAliases.\n");
    for a in aliases {
        let _ = writeln!(
            s,
            "{}\t{}",
            a.ip,
            a.hostnames.clone().unwrap_or_default().join("\t")
        );
    }
    s
}

/// Writes `<pod dir>/etc-hosts` (0644) and returns its mount. Host-network pods get a copy of
/// the node's hosts file instead of the generated one.
pub(crate) fn etc_hosts_mount(
    pod_dir: &Path,
    pod_ips: &[String],
    hostname: &str,
    domain: &str,
    aliases: &[HostAlias],
    host_network: bool,
) -> std::io::Result<Mount> {
    let content = if host_network {
        let node = std::fs::read_to_string(NODE_HOSTS_FILE)?;
        format!(
            "{MANAGED_HOSTS_HEADER_HOST_NETWORK}{node}{}",
            alias_entries(aliases)
        )
    } else {
        managed_hosts_content(pod_ips, hostname, domain, aliases)
    };
    let path = pod_dir.join("etc-hosts");
    std::fs::write(&path, content)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    Ok(Mount {
        container_path: ETC_HOSTS_PATH.into(),
        host_path: path.to_string_lossy().into_owned(),
        ..Default::default()
    })
}

/// Creates an empty, world-writable `<pod dir>/containers/<name>/<8 hex>` for the container to
/// write its termination message to, and returns its mount. Each start gets a new file so a
/// restarted container never reads its predecessor's message. Failures are logged and the
/// mount skipped, as upstream.
pub(crate) fn termination_message_mount(pod_dir: &Path, container: &Container) -> Option<Mount> {
    let target = container
        .termination_message_path
        .as_deref()
        .filter(|p| !p.is_empty())?;
    let dir = pod_dir.join("containers").join(&container.name);
    let created = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&dir)
        .and_then(|()| create_message_file(&dir));
    match created {
        Ok(file) => Some(Mount {
            container_path: target.to_owned(),
            host_path: file.to_string_lossy().into_owned(),
            ..Default::default()
        }),
        Err(e) => {
            error!(dir = %dir.display(), error = %e, "error on creating termination-log file");
            None
        }
    }
}

fn create_message_file(dir: &Path) -> std::io::Result<PathBuf> {
    let file = dir.join(format!("{:08x}", fastrand::u32(..)));
    std::fs::File::create(&file)?;
    // Set explicitly: the umask would otherwise strip the write bits the container user needs.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666))?;
    Ok(file)
}
