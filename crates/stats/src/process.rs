//! The standard process_* metrics of the kubelet itself, read from /proc/self on each scrape
//! (the same names and help texts as Go's process collector).

use procfs::process::{LimitValue, Process};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

#[derive(Debug, Default)]
pub struct ProcessCollector;

/// One reading of /proc/self.
struct ProcessFigures {
    cpu_seconds: f64,
    open_fds: f64,
    max_fds: Option<f64>,
    resident_bytes: f64,
    virtual_bytes: f64,
    start_time_seconds: f64,
}

fn read() -> procfs::ProcResult<ProcessFigures> {
    let me = Process::myself()?;
    let stat = me.stat()?;
    let ticks = procfs::ticks_per_second() as f64;
    let boot = procfs::boot_time_secs()? as f64;
    let max_fds = match me.limits()?.max_open_files.soft_limit {
        LimitValue::Value(n) => Some(n as f64),
        LimitValue::Unlimited => None,
    };
    Ok(ProcessFigures {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        open_fds: me.fd_count()? as f64,
        max_fds,
        resident_bytes: (stat.rss * procfs::page_size()) as f64,
        virtual_bytes: stat.vsize as f64,
        start_time_seconds: boot + stat.starttime as f64 / ticks,
    })
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: f64) -> std::fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let figures = match read() {
            Ok(figures) => figures,
            Err(error) => {
                // A scrape without process figures beats a failed scrape.
                tracing::warn!(%error, "cannot read /proc/self for the process metrics");
                return Ok(());
            }
        };
        let cpu = ConstCounter::new(figures.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        gauge(
            &mut encoder,
            "process_open_fds",
            "Number of open file descriptors.",
            figures.open_fds,
        )?;
        if let Some(max_fds) = figures.max_fds {
            gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max_fds,
            )?;
        }
        gauge(
            &mut encoder,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            figures.resident_bytes,
        )?;
        gauge(
            &mut encoder,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            figures.virtual_bytes,
        )?;
        gauge(
            &mut encoder,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            figures.start_time_seconds,
        )
    }
}
