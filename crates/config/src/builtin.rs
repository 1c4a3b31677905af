//! The built-in container runtime's settings: the directories it keeps its files in and where it
//! finds CNI and registry configuration. The kubelet's flags of the same names configure the
//! embedded runtime and `kubelet runtime`'s configure it served alone, with these defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::ConfigError;

pub(crate) const DEFAULT_ROOT: &str = "/var/lib/kubelet-rs";
pub(crate) const DEFAULT_STATE: &str = "/run/kubelet-rs";
pub(crate) const DEFAULT_CNI_CONF_DIR: &str = "/etc/cni/net.d";
/// Upstream CNI's directory first, then Debian's packaged plugins.
pub(crate) const DEFAULT_CNI_BIN_DIRS: &str = "/opt/cni/bin,/usr/lib/cni";

/// The streaming server listens on loopback, as containerd's does by default: the kubelet
/// proxies every session to it.
pub(crate) const DEFAULT_STREAMING_ADDRESS: &str = "127.0.0.1:0";
/// Upstream's --streaming-connection-idle-timeout default.
pub(crate) const DEFAULT_STREAMING_IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

/// Where the embedded runtime serves CRI, under the kubelet's --root-dir, for crictl and critest.
pub(crate) const SOCKET_UNDER_ROOT_DIR: &str = "runtime/cri.sock";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinRuntimeConfig {
    /// Persistent files: images, records, container bundles (--runtime-root / --root).
    pub root: PathBuf,
    /// Files gone at reboot: monitors, pinned namespaces (--runtime-state / --state).
    pub state: PathBuf,
    /// The first conflist here configures pod networks (--cni-conf-dir).
    pub cni_conf_dir: PathBuf,
    /// CNI plugin binaries, searched in order (--cni-bin-dir).
    pub cni_bin_dirs: Vec<PathBuf>,
    /// A containerd certs.d directory, HOST/hosts.toml (--registry-config); None: no mirrors.
    pub registry_config: Option<PathBuf>,
    /// IP:PORT of the exec/attach/port-forward streaming server (--streaming-address).
    pub streaming_address: SocketAddr,
    /// A streaming session silent this long is closed (--streaming-connection-idle-timeout).
    pub streaming_idle_timeout: Duration,
}

/// `IP:PORT` for --streaming-address.
pub(crate) fn streaming_address(text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|e| ConfigError::BadFlagValue {
        flag: "streaming-address".into(),
        value: text.into(),
        reason: format!("not an IP:PORT ({e})"),
    })
}

impl BuiltinRuntimeConfig {
    pub(crate) fn new(
        root: String,
        state: String,
        cni_conf_dir: String,
        cni_bin_dirs: &[String],
        registry_config: String,
        streaming_address: SocketAddr,
        streaming_idle_timeout: Duration,
    ) -> Self {
        BuiltinRuntimeConfig {
            root: PathBuf::from(root),
            state: PathBuf::from(state),
            cni_conf_dir: PathBuf::from(cni_conf_dir),
            cni_bin_dirs: cni_bin_dirs.iter().map(PathBuf::from).collect(),
            registry_config: Some(registry_config)
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from),
            streaming_address,
            streaming_idle_timeout,
        }
    }
}
