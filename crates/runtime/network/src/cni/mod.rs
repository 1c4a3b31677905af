//! CNI for pod sandboxes, as containerd's CRI plugin drives it: `lo` up (ourselves, beside the
//! chain, where containerd execs the loopback plugin), and the first network list of the conf
//! dir, plugin by plugin with prevResult; the list and result cached per sandbox so DEL (reverse
//! order) repeats exactly what ADD did.

mod args;
mod cache;
mod config;
mod exec;
mod loopback;
mod result;

use crate::NetworkError;
use cache::CacheRecord;
use exec::Invocation;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one plugin invocation may take before it is killed.
const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The pod a network is set up for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attachment {
    pub sandbox_id: String,
    /// The pinned network namespace.
    pub netns: PathBuf,
    pub pod_name: String,
    pub pod_namespace: String,
    pub pod_uid: String,
    pub port_mappings: Vec<k8s_cri::v1::PortMapping>,
    pub annotations: BTreeMap<String, String>,
}

/// What ADD gave the pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkResult {
    /// The first is the primary pod IP (IPv4 first).
    pub ips: Vec<String>,
}

/// The runtime's CNI: cheap to clone, shared by all sandboxes.
#[derive(Debug, Clone)]
pub struct Cni {
    conf_dir: PathBuf,
    bin_dirs: Arc<[PathBuf]>,
    cache_dir: PathBuf,
    timeout: Duration,
    pod_cidr: Arc<Mutex<Option<String>>>,
}

impl Cni {
    /// conf_dir holds the network configs, bin_dirs the plugins (searched in order, also
    /// passed as CNI_PATH), cache_dir one record per attached sandbox.
    pub fn new(conf_dir: PathBuf, bin_dirs: Vec<PathBuf>, cache_dir: PathBuf) -> Cni {
        Cni {
            conf_dir,
            bin_dirs: bin_dirs.into(),
            cache_dir,
            timeout: DEFAULT_PLUGIN_TIMEOUT,
            pod_cidr: Arc::default(),
        }
    }

    /// The time limit for each plugin invocation (60 s by default).
    pub fn with_plugin_timeout(mut self, timeout: Duration) -> Cni {
        self.timeout = timeout;
        self
    }

    /// Ok when a usable network config exists; the Err is the NetworkReady=false reason. Read
    /// afresh each time, so a config written later (by a network daemon) is picked up.
    pub fn status(&self) -> Result<(), String> {
        config::load_first(&self.conf_dir)
            .map(drop)
            .map_err(|reason| format!("cni config load failed: {reason}"))
    }

    /// Remembers the pod CIDR the kubelet sends with UpdateRuntimeConfig.
    pub fn set_pod_cidr(&self, cidr: &str) {
        let cidr = Some(cidr.trim())
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        let mut current = self.pod_cidr.lock().unwrap_or_else(|e| e.into_inner());
        if *current != cidr {
            tracing::info!(pod_cidr = ?cidr, previous = ?*current, "pod CIDR updated");
            *current = cidr;
        }
    }

    /// The pod CIDR last given to [`Cni::set_pod_cidr`].
    pub fn pod_cidr(&self) -> Option<String> {
        self.pod_cidr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// CNI ADD: `lo` up, and each plugin of the first network list on eth0. On failure
    /// what was added is deleted again and the error names the plugin and sandbox.
    #[tracing::instrument(skip_all, fields(sandbox_id = %attachment.sandbox_id))]
    pub async fn setup(&self, attachment: &Attachment) -> Result<NetworkResult, NetworkError> {
        let cache_path = self.cache_path(attachment)?;
        if !exec::is_namespace(&attachment.netns) {
            return Err(NetworkError::InvalidAttachment {
                sandbox_id: attachment.sandbox_id.clone(),
                reason: format!("{} is not a network namespace", attachment.netns.display()),
            });
        }
        let network = config::load_first(&self.conf_dir).map_err(NetworkError::Config)?;
        let mut record = CacheRecord::new(
            &attachment.sandbox_id,
            network,
            args::cni_args(attachment)?,
            args::capability_args(attachment)?,
        );
        // Written before ADD, so that a DEL after a crash mid-ADD still knows the list.
        cache::save(&cache_path, &record)?;
        match self.add(attachment, &record).await {
            Ok((result, ips)) => {
                record.result = Some(result);
                cache::save(&cache_path, &record)?;
                tracing::info!(?ips, network = %record.network.name, "pod network set up");
                Ok(NetworkResult { ips })
            }
            Err(err) => {
                let present = exec::is_namespace(&attachment.netns);
                match self.del(attachment, &record, present).await {
                    Ok(()) => cache::remove(&cache_path)?,
                    Err(cleanup) => tracing::warn!(error = %cleanup, "DEL after a failed ADD"),
                }
                Err(err)
            }
        }
    }

    /// CNI DEL with the cached list in reverse order (`lo` goes with the namespace, so it is left
    /// alone). Idempotent: no cache and no
    /// namespace is Ok; without a cache a live namespace is torn down with the current config.
    #[tracing::instrument(skip_all, fields(sandbox_id = %attachment.sandbox_id))]
    pub async fn teardown(&self, attachment: &Attachment) -> Result<(), NetworkError> {
        let cache_path = self.cache_path(attachment)?;
        let present = exec::is_namespace(&attachment.netns);
        let cached = cache::load(&cache_path).unwrap_or_else(|err| {
            tracing::warn!(error = %err, "unreadable CNI cache, using the current config");
            None
        });
        let record = match cached {
            Some(record) => record,
            None if !present => return Ok(()),
            None => match config::load_first(&self.conf_dir) {
                Ok(network) => CacheRecord::new(
                    &attachment.sandbox_id,
                    network,
                    args::cni_args(attachment)?,
                    args::capability_args(attachment)?,
                ),
                Err(reason) => {
                    tracing::warn!(%reason, "no CNI cache and no config: nothing to delete");
                    return Ok(());
                }
            },
        };
        self.del(attachment, &record, present).await?;
        cache::remove(&cache_path)?;
        tracing::info!(network = %record.network.name, "pod network torn down");
        Ok(())
    }

    fn cache_path(&self, attachment: &Attachment) -> Result<PathBuf, NetworkError> {
        let id = &attachment.sandbox_id;
        let valid = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && !id.starts_with('.');
        if !valid {
            return Err(NetworkError::InvalidAttachment {
                sandbox_id: id.clone(),
                reason: "a sandbox id holds only [A-Za-z0-9_.-] and does not start with '.'".into(),
            });
        }
        Ok(cache::path(&self.cache_dir, id))
    }

    fn invocation<'a>(
        &'a self,
        command: &'static str,
        attachment: &'a Attachment,
        netns: &'a str,
        ifname: &'a str,
        cni_args: &'a str,
    ) -> Invocation<'a> {
        Invocation {
            command,
            sandbox_id: &attachment.sandbox_id,
            netns,
            ifname,
            cni_args,
            bin_dirs: &self.bin_dirs,
            timeout: self.timeout,
        }
    }

    /// Returns the last plugin's result and the pod IPs in it.
    async fn add(
        &self,
        attachment: &Attachment,
        record: &CacheRecord,
    ) -> Result<(Value, Vec<String>), NetworkError> {
        let netns = path_str(&attachment.netns, &attachment.sandbox_id)?;
        let lo_path = attachment.netns.clone();
        let lo = tokio::task::spawn_blocking(move || loopback::up(&lo_path));
        let chain = self.chain(attachment, record, netns);
        let (lo, chain) = tokio::join!(lo, chain);
        lo.map_err(|_| NetworkError::ThreadPanicked)??;
        let (result, plugin) = chain?;
        let bad = |reason: String| NetworkError::BadResult {
            plugin: plugin.into(),
            sandbox_id: attachment.sandbox_id.clone(),
            reason,
        };
        let ips = result::pod_ips(&result).map_err(bad)?;
        if ips.is_empty() {
            return Err(bad(format!(
                "no IP address for {}: {result}",
                result::POD_IFNAME
            )));
        }
        Ok((result, ips))
    }

    /// ADD of each plugin of the list in order, each given the previous one's result; returns
    /// the last result and the plugin that gave it.
    async fn chain<'a>(
        &self,
        attachment: &Attachment,
        record: &'a CacheRecord,
        netns: &str,
    ) -> Result<(Value, &'a str), NetworkError> {
        let network = &record.network;
        let add = self.invocation(
            "ADD",
            attachment,
            netns,
            result::POD_IFNAME,
            &record.cni_args,
        );
        let mut prev: Option<(Value, &str)> = None;
        for index in 0..network.plugins.len() {
            let plugin = network.plugin_type(index);
            let conf = network.netconf(index, prev.as_ref().map(|p| &p.0), &record.capability_args);
            let stdout = exec::run(&add, plugin, &conf).await?;
            let result = serde_json::from_slice(&stdout).map_err(|e| NetworkError::BadResult {
                plugin: plugin.into(),
                sandbox_id: attachment.sandbox_id.clone(),
                reason: format!("{e}: {}", String::from_utf8_lossy(&stdout)),
            })?;
            prev = Some((result, plugin));
        }
        Ok(prev.expect("a network list has at least one plugin"))
    }

    /// DEL of every plugin in reverse, with the cached result as prevResult (from CNI 0.4.0 on,
    /// as libcni). Stops at the first real error, so a retry repeats the whole DEL.
    async fn del(
        &self,
        attachment: &Attachment,
        record: &CacheRecord,
        netns_present: bool,
    ) -> Result<(), NetworkError> {
        let netns = match netns_present {
            true => path_str(&attachment.netns, &attachment.sandbox_id)?,
            false => "",
        };
        let network = &record.network;
        let prev = record
            .result
            .as_ref()
            .filter(|_| version_at_least(&network.cni_version, (0, 4, 0)));
        let del = self.invocation(
            "DEL",
            attachment,
            netns,
            result::POD_IFNAME,
            &record.cni_args,
        );
        for index in (0..network.plugins.len()).rev() {
            let plugin = network.plugin_type(index);
            let conf = network.netconf(index, prev, &record.capability_args);
            match exec::run(&del, plugin, &conf).await {
                Err(err) if exec::is_gone_error(&err, !netns_present) => {
                    tracing::info!(error = %err, "DEL of an already removed network ignored");
                }
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }
}

fn path_str<'a>(path: &'a Path, sandbox_id: &str) -> Result<&'a str, NetworkError> {
    path.to_str()
        .ok_or_else(|| NetworkError::InvalidAttachment {
            sandbox_id: sandbox_id.to_string(),
            reason: format!("netns path {} is not UTF-8", path.display()),
        })
}

/// Compares "MAJOR.MINOR.PATCH"; anything unparsable (or empty, meaning 0.1.0) is older.
fn version_at_least(version: &str, wanted: (u64, u64, u64)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u64>());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => (a, b, c) >= wanted,
        (Some(Ok(a)), Some(Ok(b)), None) => (a, b, 0) >= wanted,
        _ => false,
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
