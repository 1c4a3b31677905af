//! Writes the Prometheus text format (0.0.4) by hand for the endpoints whose samples carry
//! their own timestamps, which the metrics client cannot express.

use std::fmt::Write;

/// The content type of [`render`]'s and [`openmetrics_to_prometheus`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of the metrics client's own output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One sample: its labels in exposition order, its value and, if it has one, the time it
/// was measured (milliseconds since the epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// A metric family: written only when it has samples, as Go's registry does.
#[derive(Debug, Clone)]
pub struct FamilyText {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

impl FamilyText {
    pub fn new(name: &'static str, help: &'static str, kind: Kind) -> Self {
        FamilyText {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    pub fn push(
        &mut self,
        labels: Vec<(&'static str, String)>,
        value: f64,
        timestamp_ms: Option<i64>,
    ) {
        self.samples.push(Sample {
            labels,
            value,
            timestamp_ms,
        });
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        value.to_string()
    }
}

/// The families sorted by name, as upstream's registry gathers them.
pub fn render(mut families: Vec<FamilyText>) -> String {
    families.sort_by_key(|f| f.name);
    let mut out = String::new();
    for family in families.iter().filter(|f| !f.samples.is_empty()) {
        let kind = match family.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {kind}", family.name);
        for sample in &family.samples {
            out.push_str(family.name);
            if !sample.labels.is_empty() {
                // Sorted by name, as Go's client writes constant metrics.
                let mut pairs: Vec<&(&str, String)> = sample.labels.iter().collect();
                pairs.sort_by_key(|(k, _)| *k);
                let labels: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = write!(out, "{{{}}}", labels.join(","));
            }
            let _ = write!(out, " {}", format_value(sample.value));
            if let Some(ms) = sample.timestamp_ms {
                let _ = write!(out, " {ms}");
            }
            out.push('\n');
        }
    }
    out
}

/// Turns the metrics client's OpenMetrics text into the Prometheus text format 0.0.4, which
/// upstream serves to clients that do not ask for OpenMetrics: a counter family takes its
/// samples' `_total` name, `unknown` is `untyped`, and there is no `# EOF`.
pub fn openmetrics_to_prometheus(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| Some((prefix, line.strip_prefix(prefix)?)));
        match descriptor {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                let tail = if prefix == "# TYPE " && tail == "unknown" {
                    "untyped"
                } else {
                    tail
                };
                let _ = writeln!(out, "{prefix}{name}{suffix} {tail}");
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}
