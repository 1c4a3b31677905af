//! A sandbox's network counters, read inside its network namespace: /proc/thread-self/net/dev
//! of a short-lived thread that joined the pinned namespace (so a pod needs no running process
//! for its figures, and the runtime's own threads never change namespace).

use k8s_cri::v1::{NetworkInterfaceUsage, NetworkUsage, UInt64Value};
use nix::sched::{CloneFlags, setns};
use std::path::{Path, PathBuf};

/// The pod's interface as CNI names it; the kubelet reports it as the default.
const DEFAULT_INTERFACE: &str = "eth0";

/// The counters of every interface but loopback in the namespace pinned at `netns`.
pub(crate) fn usage(netns: &Path, timestamp: i64) -> std::io::Result<NetworkUsage> {
    let text = read_in(netns.to_path_buf())?;
    let interfaces: Vec<NetworkInterfaceUsage> = parse(&text)
        .into_iter()
        .filter(|i| i.name != "lo")
        .collect();
    Ok(NetworkUsage {
        timestamp,
        default_interface: interfaces
            .iter()
            .find(|i| i.name == DEFAULT_INTERFACE)
            .cloned(),
        interfaces,
    })
}

fn read_in(netns: PathBuf) -> std::io::Result<String> {
    std::thread::Builder::new()
        .name("netns-stats".into())
        .spawn(move || {
            let ns = std::fs::File::open(&netns)?;
            setns(&ns, CloneFlags::CLONE_NEWNET)?;
            std::fs::read_to_string("/proc/thread-self/net/dev")
        })?
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the netns stats thread panicked")))
}

/// /proc/net/dev: two header lines, then `name: rx_bytes rx_packets rx_errs ... tx_bytes
/// tx_packets tx_errs ...`.
pub(crate) fn parse(text: &str) -> Vec<NetworkInterfaceUsage> {
    let value = |v: u64| Some(UInt64Value { value: v });
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let n: Vec<u64> = counters
                .split_whitespace()
                .map(|c| c.parse().ok())
                .collect::<Option<_>>()?;
            (n.len() >= 11).then(|| NetworkInterfaceUsage {
                name: name.trim().to_string(),
                rx_bytes: value(n[0]),
                rx_errors: value(n[2]),
                tx_bytes: value(n[8]),
                tx_errors: value(n[10]),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:    1296      16    1    0    0     0          0         0      656       8    2    0    0     0       0          0
";

    #[test]
    fn parses_every_interface() {
        let all = parse(DEV);
        assert_eq!(all.len(), 2);
        let eth0 = &all[1];
        assert_eq!(eth0.name, "eth0");
        assert_eq!(eth0.rx_bytes.as_ref().unwrap().value, 1296);
        assert_eq!(eth0.rx_errors.as_ref().unwrap().value, 1);
        assert_eq!(eth0.tx_bytes.as_ref().unwrap().value, 656);
        assert_eq!(eth0.tx_errors.as_ref().unwrap().value, 2);
    }
}
