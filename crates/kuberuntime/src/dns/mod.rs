//! A pod's DNS configuration (upstream pkg/kubelet/network/dns `GetPodDNS`): the dnsPolicy
//! picks the base (cluster DNS, the host's resolv.conf, or nothing), the pod's dnsConfig is
//! merged on top, and the result is cut to the resolver's limits.

pub mod resolv_conf;

use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};
use kubelet_cri::api::DnsConfig;
use std::net::IpAddr;
use std::path::PathBuf;
use thiserror::Error;
use tracing::{error, warn};

/// The kubelet's DNS settings (`--cluster-dns`, `--cluster-domain`, `--resolv-conf`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsOptions {
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    /// The host resolv.conf, read on every call; empty means none: pods on the host's DNS
    /// then resolve through the node itself (127.0.0.1 or ::1), as upstream.
    pub resolv_conf: PathBuf,
    /// The node's addresses, for that localhost fallback's address family.
    pub node_ips: Vec<IpAddr>,
}

#[derive(Debug, Error)]
pub enum DnsError {
    #[error("could not open resolv.conf {path}: {source}")]
    ReadResolvConf {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("resolv.conf {path} is larger than {max} bytes")]
    ResolvConfTooLarge { path: PathBuf, max: usize },
    #[error("encountered error while parsing resolv.conf {path}: {message}")]
    ParseResolvConf { path: PathBuf, message: String },
}

/// The upstream limits (pkg/apis/core/validation): 3 nameservers, 32 search domains of at most
/// 253 characters each, and 2048 characters for the whole search line.
pub const MAX_NAMESERVERS: usize = 3;
pub const MAX_SEARCH_PATHS: usize = 32;
pub const MAX_SEARCH_LINE_CHARS: usize = 2048;
const MAX_DOMAIN_LENGTH: usize = 253;

const DEFAULT_OPTIONS: &[&str] = &["ndots:5"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodDnsType {
    Cluster,
    Host,
    None,
}

fn pod_dns_type(pod: &Pod) -> PodDnsType {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    // An unset policy is the API default, ClusterFirst.
    match spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst")
    {
        "None" => PodDnsType::None,
        "ClusterFirstWithHostNet" => PodDnsType::Cluster,
        "ClusterFirst" if !host_network => PodDnsType::Cluster,
        // ClusterFirst on the host network falls back to Default, as upstream.
        "ClusterFirst" | "Default" => PodDnsType::Host,
        other => {
            error!(pod = %pod_name(pod), policy = other, "invalid DNSPolicy, falling back to ClusterFirst");
            PodDnsType::Cluster
        }
    }
}

fn pod_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The DNS config the pod's sandbox gets.
pub fn pod_dns_config(pod: &Pod, opts: &DnsOptions) -> Result<DnsConfig, DnsError> {
    // Upstream reads the host file first, whatever the policy, so a broken file fails all pods.
    let host = host_dns_config(opts)?;
    let mut config = match pod_dns_type(pod) {
        PodDnsType::None => DnsConfig::default(),
        PodDnsType::Cluster if !opts.cluster_dns.is_empty() => DnsConfig {
            servers: opts.cluster_dns.iter().map(IpAddr::to_string).collect(),
            searches: cluster_searches(host.searches, pod, &opts.cluster_domain),
            options: DEFAULT_OPTIONS.iter().map(|o| (*o).to_owned()).collect(),
        },
        PodDnsType::Cluster => {
            warn!(
                pod = %pod_name(pod),
                reason = "MissingClusterDNS",
                "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy."
            );
            host_based(host, opts)
        }
        PodDnsType::Host => host_based(host, opts),
    };
    if let Some(pod_config) = pod.spec.as_ref().and_then(|s| s.dns_config.as_ref()) {
        append_pod_dns_config(&mut config, pod_config);
    }
    fit_limits(&mut config, pod);
    Ok(config)
}

fn host_dns_config(opts: &DnsOptions) -> Result<DnsConfig, DnsError> {
    if opts.resolv_conf.as_os_str().is_empty() {
        return Ok(DnsConfig::default());
    }
    let path = &opts.resolv_conf;
    let content = std::fs::read(path).map_err(|source| DnsError::ReadResolvConf {
        path: path.clone(),
        source,
    })?;
    if content.len() > resolv_conf::MAX_RESOLV_CONF_LENGTH {
        return Err(DnsError::ResolvConfTooLarge {
            path: path.clone(),
            max: resolv_conf::MAX_RESOLV_CONF_LENGTH,
        });
    }
    let parsed = resolv_conf::parse(&String::from_utf8_lossy(&content)).map_err(|message| {
        DnsError::ParseResolvConf {
            path: path.clone(),
            message,
        }
    })?;
    Ok(DnsConfig {
        servers: parsed.nameservers,
        searches: parsed.searches,
        options: parsed.options,
    })
}

/// The host's config; without a resolv.conf, the node itself is the nameserver and "." the
/// only search domain, which effectively disables search.
fn host_based(mut host: DnsConfig, opts: &DnsOptions) -> DnsConfig {
    if opts.resolv_conf.as_os_str().is_empty() {
        host.servers.extend(
            opts.node_ips
                .iter()
                .map(|ip| if ip.is_ipv6() { "::1" } else { "127.0.0.1" }.to_owned()),
        );
        if host.servers.is_empty() {
            host.servers.push("127.0.0.1".into());
        }
        host.searches = vec![".".into()];
    }
    host
}

/// `<ns>.svc.<domain> svc.<domain> <domain>` then the host's search list, without duplicates.
fn cluster_searches(host_searches: Vec<String>, pod: &Pod, domain: &str) -> Vec<String> {
    if domain.is_empty() {
        return host_searches;
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let cluster = [
        format!("{namespace}.svc.{domain}"),
        format!("svc.{domain}"),
        domain.to_owned(),
    ];
    omit_duplicates(cluster.into_iter().chain(host_searches))
}

fn omit_duplicates(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Pod nameservers and searches are appended (duplicates dropped); pod options replace options
/// of the same name.
fn append_pod_dns_config(config: &mut DnsConfig, pod_config: &PodDNSConfig) {
    let servers = std::mem::take(&mut config.servers);
    config.servers = omit_duplicates(
        servers
            .into_iter()
            .chain(pod_config.nameservers.clone().unwrap_or_default()),
    );
    let searches = std::mem::take(&mut config.searches);
    config.searches = omit_duplicates(
        searches
            .into_iter()
            .chain(pod_config.searches.clone().unwrap_or_default()),
    );
    let pod_options: Vec<String> = pod_config
        .options
        .iter()
        .flatten()
        .map(|o| {
            let name = o.name.as_deref().unwrap_or_default();
            match o.value.as_deref().filter(|v| !v.is_empty()) {
                Some(value) => format!("{name}:{value}"),
                None => name.to_owned(),
            }
        })
        .collect();
    resolv_conf::merge_options(&mut config.options, pod_options.iter().map(String::as_str));
}

fn fit_limits(config: &mut DnsConfig, pod: &Pod) {
    if config.servers.len() > MAX_NAMESERVERS {
        config.servers.truncate(MAX_NAMESERVERS);
        warn!(
            pod = %pod_name(pod),
            reason = "DNSConfigForming",
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
            config.servers.join(" ")
        );
    }
    let mut exceeded = false;
    if config.searches.len() > MAX_SEARCH_PATHS {
        config.searches.truncate(MAX_SEARCH_PATHS);
        exceeded = true;
    }
    // glibc aborts on a search domain longer than 255 characters; upstream drops them.
    let before = config.searches.len();
    config.searches.retain(|s| s.len() <= MAX_DOMAIN_LENGTH);
    exceeded |= config.searches.len() != before;
    let mut line_len = config.searches.join(" ").len();
    if line_len > MAX_SEARCH_LINE_CHARS {
        while line_len > MAX_SEARCH_LINE_CHARS {
            let Some(last) = config.searches.pop() else {
                break;
            };
            line_len = line_len.saturating_sub(last.len() + 1);
        }
        exceeded = true;
    }
    if exceeded {
        warn!(
            pod = %pod_name(pod),
            reason = "DNSConfigForming",
            "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
            config.searches.join(" ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodDNSConfigOption, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(policy: Option<&str>, host_network: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                dns_policy: policy.map(Into::into),
                host_network: Some(host_network),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    struct Host {
        _dir: tempfile::TempDir,
        opts: DnsOptions,
    }

    fn host(resolv: &str, cluster_dns: &[&str]) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, resolv).unwrap();
        Host {
            opts: DnsOptions {
                cluster_dns: cluster_dns.iter().map(|s| s.parse().unwrap()).collect(),
                cluster_domain: "cluster.local".into(),
                resolv_conf: path,
                node_ips: vec![],
            },
            _dir: dir,
        }
    }

    const RESOLV: &str = "nameserver 192.168.1.1\nsearch corp.example\noptions timeout:2\n";

    #[test]
    fn cluster_first() {
        let h = host(RESOLV, &["10.96.0.10"]);
        let c = pod_dns_config(&pod(Some("ClusterFirst"), false), &h.opts).unwrap();
        assert_eq!(c.servers, ["10.96.0.10"]);
        assert_eq!(
            c.searches,
            [
                "ns.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example"
            ]
        );
        assert_eq!(c.options, ["ndots:5"]);
        assert_eq!(
            pod_dns_config(&pod(None, false), &h.opts).unwrap(),
            c,
            "unset policy is ClusterFirst"
        );
    }

    #[test]
    fn cluster_first_without_cluster_dns_uses_host() {
        let h = host(RESOLV, &[]);
        let c = pod_dns_config(&pod(Some("ClusterFirst"), false), &h.opts).unwrap();
        assert_eq!(c.servers, ["192.168.1.1"]);
        assert_eq!(c.searches, ["corp.example"]);
        assert_eq!(c.options, ["timeout:2"]);
    }

    #[test]
    fn host_network_policies() {
        let h = host(RESOLV, &["10.96.0.10"]);
        let c = pod_dns_config(&pod(Some("ClusterFirst"), true), &h.opts).unwrap();
        assert_eq!(
            c.servers,
            ["192.168.1.1"],
            "ClusterFirst on the host network is Default"
        );
        let c = pod_dns_config(&pod(Some("ClusterFirstWithHostNet"), true), &h.opts).unwrap();
        assert_eq!(c.servers, ["10.96.0.10"]);
        let c = pod_dns_config(&pod(Some("Default"), false), &h.opts).unwrap();
        assert_eq!(c.servers, ["192.168.1.1"]);
    }

    #[test]
    fn none_takes_only_the_pod_dns_config() {
        let h = host(RESOLV, &["10.96.0.10"]);
        let mut p = pod(Some("None"), false);
        assert_eq!(pod_dns_config(&p, &h.opts).unwrap(), DnsConfig::default());
        p.spec.as_mut().unwrap().dns_config = Some(PodDNSConfig {
            nameservers: Some(vec!["1.1.1.1".into()]),
            searches: Some(vec!["x.example".into()]),
            options: Some(vec![PodDNSConfigOption {
                name: Some("edns0".into()),
                value: None,
            }]),
        });
        let c = pod_dns_config(&p, &h.opts).unwrap();
        assert_eq!(
            (c.servers, c.searches, c.options),
            (
                vec!["1.1.1.1".to_owned()],
                vec!["x.example".to_owned()],
                vec!["edns0".to_owned()]
            )
        );
    }

    #[test]
    fn pod_dns_config_merges() {
        let h = host(RESOLV, &["10.96.0.10"]);
        let mut p = pod(Some("ClusterFirst"), false);
        p.spec.as_mut().unwrap().dns_config = Some(PodDNSConfig {
            nameservers: Some(vec!["10.96.0.10".into(), "8.8.8.8".into()]),
            searches: Some(vec!["svc.cluster.local".into(), "extra.example".into()]),
            options: Some(vec![
                PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("2".into()),
                },
                PodDNSConfigOption {
                    name: Some("single-request".into()),
                    value: None,
                },
            ]),
        });
        let c = pod_dns_config(&p, &h.opts).unwrap();
        assert_eq!(c.servers, ["10.96.0.10", "8.8.8.8"]);
        assert_eq!(c.searches.last().map(String::as_str), Some("extra.example"));
        assert_eq!(c.searches.len(), 5);
        assert_eq!(c.options, ["ndots:2", "single-request"]);
    }

    #[test]
    fn limits_are_applied() {
        let many: String = (0..40).map(|i| format!(" d{i}.example")).collect();
        let h = host(
            &format!(
                "nameserver 1.1.1.1\nnameserver 1.1.1.2\nnameserver 1.1.1.3\nnameserver 1.1.1.4\nsearch{many}\n"
            ),
            &[],
        );
        let c = pod_dns_config(&pod(Some("Default"), false), &h.opts).unwrap();
        assert_eq!(c.servers.len(), MAX_NAMESERVERS);
        assert_eq!(c.searches.len(), MAX_SEARCH_PATHS);

        let long: String = (0..12)
            .map(|i| format!(" {}{i}", "a".repeat(200)))
            .collect();
        let h = host(&format!("search{long} {}\n", "b".repeat(300)), &[]);
        let c = pod_dns_config(&pod(Some("Default"), false), &h.opts).unwrap();
        assert!(c.searches.iter().all(|s| s.len() <= 253));
        assert!(c.searches.join(" ").len() <= MAX_SEARCH_LINE_CHARS);
        assert_eq!(c.searches.len(), 10);
    }

    #[test]
    fn missing_resolv_conf_is_an_error_naming_the_file() {
        let mut h = host("", &[]);
        h.opts.resolv_conf = h._dir.path().join("absent.conf");
        let err = pod_dns_config(&pod(Some("None"), false), &h.opts).unwrap_err();
        assert!(err.to_string().contains("absent.conf"), "{err}");
    }

    #[test]
    fn empty_resolv_conf_flag_means_node_local_resolver() {
        let opts = DnsOptions {
            node_ips: vec!["fd00::1".parse().unwrap()],
            ..Default::default()
        };
        let c = pod_dns_config(&pod(Some("Default"), false), &opts).unwrap();
        assert_eq!(c.servers, ["::1"]);
        assert_eq!(c.searches, ["."]);
        let c = pod_dns_config(&pod(Some("Default"), false), &DnsOptions::default()).unwrap();
        assert_eq!(c.servers, ["127.0.0.1"]);
    }
}
