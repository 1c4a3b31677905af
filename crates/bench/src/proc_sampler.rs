//! A kubelet's cost from outside: CPU time and resident memory from /proc/PID/stat.

use crate::error::{BenchError, Result};
use serde::Serialize;
use std::time::{Duration, Instant};

/// How often resident memory is sampled within a window.
const RSS_EVERY: Duration = Duration::from_millis(500);

/// The kubelet's use over one window, with `pods` running.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SteadyPoint {
    pub pods: usize,
    /// CPU time over wall time: 1.0 is one core busy.
    pub cpu_cores: f64,
    pub rss_mib_mean: f64,
    pub rss_mib_max: f64,
}

struct Sample {
    cpu_ticks: u64,
    rss_bytes: u64,
}

fn sample(pid: i32) -> Result<Sample> {
    let stat = procfs::process::Process::new(pid)
        .and_then(|p| p.stat())
        .map_err(|source| BenchError::Proc {
            what: format!("/proc/{pid}/stat of the kubelet"),
            source,
        })?;
    Ok(Sample {
        cpu_ticks: stat.utime + stat.stime,
        rss_bytes: stat.rss * procfs::page_size(),
    })
}

/// Samples process `pid` over `window`.
pub async fn measure(pid: i32, pods: usize, window: Duration) -> Result<SteadyPoint> {
    let first = sample(pid)?;
    let start = Instant::now();
    let mut rss = vec![first.rss_bytes];
    let mut last = first.cpu_ticks;
    while start.elapsed() < window {
        tokio::time::sleep(RSS_EVERY.min(window.saturating_sub(start.elapsed()))).await;
        let now = sample(pid)?;
        rss.push(now.rss_bytes);
        last = now.cpu_ticks;
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu_seconds = (last - first.cpu_ticks) as f64 / procfs::ticks_per_second() as f64;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    Ok(SteadyPoint {
        pods,
        cpu_cores: cpu_seconds / wall,
        rss_mib_mean: rss.iter().map(|b| mib(*b)).sum::<f64>() / rss.len() as f64,
        rss_mib_max: mib(rss.iter().copied().max().unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_busy_process_uses_cpu_and_memory() {
        let busy = std::thread::spawn(|| {
            let end = Instant::now() + Duration::from_millis(600);
            let mut n = 0u64;
            while Instant::now() < end {
                n = n.wrapping_add(1);
            }
            n
        });
        let point = measure(std::process::id() as i32, 3, Duration::from_millis(500))
            .await
            .unwrap();
        busy.join().unwrap();
        assert_eq!(point.pods, 3);
        assert!(point.cpu_cores > 0.0);
        assert!(point.rss_mib_mean > 0.0 && point.rss_mib_max >= point.rss_mib_mean);
    }
}
