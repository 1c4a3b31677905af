//! The kubelet's own log lines, in upstream's formats so existing log tooling keeps working:
//! klog's text header (`I1202 04:40:53.555560   17145 app.rs:74] "msg" key="value"`) and
//! component-base's JSON (`{"ts":...,"caller":...,"msg":...,"v":0,...}`), as
//! tracing-subscriber formatters. Every process of the binary (kubelet, `kubelet runtime`, the
//! container monitors) logs through [`init`].
//!
//! Verbosity follows upstream's conventions for `-v`: 0 (the default) and 1 log info, warnings
//! and errors; 2 (recommended on nodes) adds tracing's debug events, upstream's "useful steady
//! state" level; 4 and up add trace events, upstream's debug level; the HTTP/2 and gRPC
//! crates' own frame logs need 6, like client-go's request logs. `KUBELET_LOG` (an
//! EnvFilter directive such as `kubelet=trace,h2=info`) overrides -v.

mod fields;
mod json;
mod klog;

pub use json::{Json, JsonFields};
pub use klog::{Klog, KlogFields};

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::{SubscriberInitExt, TryInitError};

/// The environment variable whose EnvFilter directives override -v.
pub const FILTER_ENV: &str = "KUBELET_LOG";

/// --logging-format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// The most detailed tracing level a klog verbosity shows.
pub fn level(verbosity: u8) -> LevelFilter {
    match verbosity {
        0 | 1 => LevelFilter::INFO,
        2 | 3 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// The HTTP/2 and gRPC crates log every frame at debug: like client-go's request logging
/// upstream, they show only from -v=6, so -v=2 stays readable on a busy node.
const TRANSPORT_CRATES: &[&str] = &[
    "h2",
    "hyper",
    "hyper_util",
    "tower",
    "tonic",
    "rustls",
    "reqwest",
];
const TRANSPORT_VERBOSITY: u8 = 6;

/// What -v shows when KUBELET_LOG does not say otherwise.
pub fn default_filter(verbosity: u8) -> EnvFilter {
    let mut filter = EnvFilter::default().add_directive(level(verbosity).into());
    if verbosity < TRANSPORT_VERBOSITY {
        for krate in TRANSPORT_CRATES {
            let directive = format!("{krate}=info")
                .parse()
                .expect("a crate name and a level make a directive");
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// The klog verbosity an event of `level` is logged at: the "v" of a JSON line.
pub(crate) fn verbosity_of(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::TRACE => 4,
        tracing::Level::DEBUG => 2,
        _ => 0,
    }
}

/// Installs the global subscriber: `format` lines to `writer`, filtered by `verbosity` unless
/// KUBELET_LOG says otherwise. `ansi` colours warnings and errors of the text format; only a
/// terminal wants it, files and journald would keep the codes as text.
pub fn init<W>(verbosity: u8, format: Format, writer: W, ansi: bool) -> Result<(), TryInitError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_env(FILTER_ENV).unwrap_or_else(|_| default_filter(verbosity));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        Format::Text => builder
            .fmt_fields(KlogFields)
            .event_format(Klog::default())
            .finish()
            .try_init(),
        Format::Json => builder
            .fmt_fields(JsonFields)
            .event_format(Json::default())
            .finish()
            .try_init(),
    }
}

#[cfg(test)]
mod tests;
