//! A kubelet's cost from outside: CPU time from /proc/PID/stat, resident memory (RSS and PSS)
//! from /proc/PID/smaps_rollup; and the memory of the runtime's processes (the daemon with every
//! shim or monitor) over the same window.

use crate::error::{BenchError, Result};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often resident memory is sampled within a window.
const RSS_EVERY: Duration = Duration::from_millis(500);

/// The kubelet's use over one window, with `pods` running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SteadyPoint {
    pub pods: usize,
    /// CPU time over wall time: 1.0 is one core busy.
    pub cpu_cores: f64,
    pub rss_mib_mean: f64,
    pub rss_mib_max: f64,
    /// Proportional set size: shared pages (the binary's text, libraries) split among the
    /// processes that map them.
    pub pss_mib_mean: f64,
    /// The runtime's processes (the daemon and every shim or monitor), summed, mean over the
    /// window; 0 when the runtime was not sampled.
    pub runtime_rss_mib_mean: f64,
    pub runtime_pss_mib_mean: f64,
    /// How many processes the runtime had, mean over the window.
    pub runtime_processes: f64,
}

/// What the runtime is, for sampling: every process whose command line names `marker` (its
/// state or socket dir, which the daemon and each shim or monitor are started with), except
/// those in `exclude` (the kubelet and the bench, which name the socket too).
#[derive(Debug, Clone)]
pub struct RuntimeProcesses<'a> {
    pub marker: &'a Path,
    pub exclude: Vec<i32>,
}

/// Resident memory of one process or a group, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Memory {
    rss: u64,
    pss: u64,
}

impl std::ops::Add for Memory {
    type Output = Memory;
    fn add(self, other: Memory) -> Memory {
        Memory {
            rss: self.rss + other.rss,
            pss: self.pss + other.pss,
        }
    }
}

/// The Rss and Pss lines of a smaps_rollup file (kB).
fn parse_rollup(text: &str) -> Memory {
    let kib = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Memory {
        rss: kib("Rss:"),
        pss: kib("Pss:"),
    }
}

fn memory(pid: i32) -> std::io::Result<Memory> {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).map(|text| parse_rollup(&text))
}

fn cpu_ticks(pid: i32) -> Result<u64> {
    let stat = procfs::process::Process::new(pid)
        .and_then(|p| p.stat())
        .map_err(|source| BenchError::Proc {
            what: format!("/proc/{pid}/stat of the kubelet"),
            source,
        })?;
    Ok(stat.utime + stat.stime)
}

/// Processes whose command line names `dir`.
pub fn processes_naming(dir: &Path) -> Vec<i32> {
    let needle = dir.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&needle))
        })
        .collect()
}

/// The runtime's processes now and their memory summed. A process that exits between the
/// listing and the read counts for nothing.
fn runtime_memory(runtime: &RuntimeProcesses) -> (Memory, usize) {
    let pids: Vec<i32> = processes_naming(runtime.marker)
        .into_iter()
        .filter(|pid| !runtime.exclude.contains(pid))
        .collect();
    let total = pids
        .iter()
        .filter_map(|pid| memory(*pid).ok())
        .fold(Memory::default(), |a, b| a + b);
    (total, pids.len())
}

/// Samples process `pid` (and the runtime's processes, when given) over `window`.
pub async fn measure(
    pid: i32,
    pods: usize,
    window: Duration,
    runtime: Option<&RuntimeProcesses<'_>>,
) -> Result<SteadyPoint> {
    let kubelet_memory =
        || memory(pid).map_err(|err| BenchError::io(format!("read /proc/{pid}/smaps_rollup"), err));
    let first_ticks = cpu_ticks(pid)?;
    let start = Instant::now();
    let mut own = vec![kubelet_memory()?];
    let mut theirs = Vec::new();
    let mut last_ticks = first_ticks;
    loop {
        if let Some(runtime) = runtime {
            theirs.push(runtime_memory(runtime));
        }
        if start.elapsed() >= window {
            break;
        }
        tokio::time::sleep(RSS_EVERY.min(window.saturating_sub(start.elapsed()))).await;
        own.push(kubelet_memory()?);
        last_ticks = cpu_ticks(pid)?;
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu_seconds = (last_ticks - first_ticks) as f64 / procfs::ticks_per_second() as f64;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let mean = |values: &[f64]| {
        if values.is_empty() {
            0.0
        } else {
            values.iter().sum::<f64>() / values.len() as f64
        }
    };
    let of_own = |f: fn(&Memory) -> u64| mean(&own.iter().map(|m| mib(f(m))).collect::<Vec<_>>());
    let of_theirs =
        |f: fn(&Memory) -> u64| mean(&theirs.iter().map(|(m, _)| mib(f(m))).collect::<Vec<_>>());
    Ok(SteadyPoint {
        pods,
        cpu_cores: cpu_seconds / wall,
        rss_mib_mean: of_own(|m| m.rss),
        rss_mib_max: mib(own.iter().map(|m| m.rss).max().unwrap_or_default()),
        pss_mib_mean: of_own(|m| m.pss),
        runtime_rss_mib_mean: of_theirs(|m| m.rss),
        runtime_pss_mib_mean: of_theirs(|m| m.pss),
        runtime_processes: mean(&theirs.iter().map(|(_, n)| *n as f64).collect::<Vec<_>>()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollup_lines_are_kib() {
        let text = "55d0c0a00000-7ffd4d5f1000 ---p 00000000 00:00 0  [rollup]\n\
                    Rss:               25600 kB\nPss:               20480 kB\n\
                    Pss_Anon:          10000 kB\n";
        assert_eq!(
            parse_rollup(text),
            Memory {
                rss: 25600 * 1024,
                pss: 20480 * 1024
            }
        );
    }

    #[tokio::test]
    async fn a_busy_process_uses_cpu_and_memory_and_a_child_is_found_by_its_marker() {
        let marker = tempfile::tempdir().unwrap();
        // The shell names the marker (its $0) and stays, as it has work after the sleep.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30; :"])
            .arg(marker.path())
            .spawn()
            .unwrap_or_else(|err| panic!("sh is needed for this test: {err}"));
        // Until it execs, the child's command line is this test binary's.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !processes_naming(marker.path()).contains(&(child.id() as i32)) {
            assert!(
                Instant::now() < deadline,
                "the shell never named its marker"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let busy = std::thread::spawn(|| {
            let end = Instant::now() + Duration::from_millis(600);
            let mut n = 0u64;
            while Instant::now() < end {
                n = n.wrapping_add(1);
            }
            n
        });
        let runtime = RuntimeProcesses {
            marker: marker.path(),
            exclude: vec![std::process::id() as i32],
        };
        let point = measure(
            std::process::id() as i32,
            3,
            Duration::from_millis(500),
            Some(&runtime),
        )
        .await;
        busy.join().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        let point = point.unwrap();
        assert_eq!(point.pods, 3);
        assert!(point.cpu_cores > 0.0);
        assert!(point.rss_mib_mean > 0.0 && point.rss_mib_max >= point.rss_mib_mean);
        assert!(point.pss_mib_mean > 0.0 && point.pss_mib_mean <= point.rss_mib_max);
        assert_eq!(point.runtime_processes, 1.0, "the shell alone");
        assert!(point.runtime_rss_mib_mean > 0.0);
    }
}
