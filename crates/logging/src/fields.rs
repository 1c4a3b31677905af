//! One event's or span's fields, sorted into what both formats treat specially (the message,
//! the error, a bridged `log` record's location) and the key/value pairs in order.

use std::fmt;
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing_subscriber::fmt::{FmtContext, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// Text, quoted by the formats; Display and Debug values land here too, as klog prints a
    /// fmt.Stringer.
    Text(String),
    /// A number or boolean, written as it is.
    Plain(String),
}

#[derive(Debug, Default)]
pub(crate) struct Fields {
    pub message: Option<String>,
    /// A field named `error` or `err`: upstream's "err" key.
    pub err: Option<String>,
    pub pairs: Vec<(&'static str, Value)>,
    /// Where a record bridged from the `log` crate came from.
    pub log_file: Option<String>,
    pub log_line: Option<u64>,
}

impl Fields {
    fn text(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = Some(value),
            "error" | "err" => self.err = Some(value),
            "log.file" => self.log_file = Some(value),
            "log.target" | "log.module_path" => {}
            name => self.pairs.push((name, Value::Text(value))),
        }
    }

    fn plain(&mut self, field: &Field, value: String) {
        match field.name() {
            "log.line" => self.log_line = value.parse().ok(),
            name => self.pairs.push((name, Value::Plain(value))),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, format!("{value:?}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, value.to_string());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.plain(field, value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.plain(field, value.to_string());
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.plain(field, value.to_string());
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.plain(field, value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.plain(field, value.to_string());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: those travel as text.
        if value.is_finite() {
            self.plain(field, value.to_string());
        } else {
            self.text(field, value.to_string());
        }
    }
}

/// The fields of `record`, visited.
pub(crate) fn collect(record: impl tracing_subscriber::field::RecordFields) -> Fields {
    let mut fields = Fields::default();
    record.record(&mut fields);
    fields
}

/// The source file and line of an event, preferring a bridged `log` record's own.
pub(crate) fn location(fields: &Fields, meta: &tracing::Metadata<'_>) -> (Option<String>, u64) {
    let file = fields
        .log_file
        .clone()
        .or_else(|| meta.file().map(str::to_owned));
    let line = fields
        .log_line
        .or_else(|| meta.line().map(u64::from))
        .unwrap_or(0);
    (file, line)
}

/// Hands `each` the fields of every span around the event (as `N` formatted them when the span
/// was made), outermost first, skipping spans without fields.
pub(crate) fn for_each_span<S, N>(
    ctx: &FmtContext<'_, S, N>,
    mut each: impl FnMut(&str) -> fmt::Result,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let Some(scope) = ctx.event_scope() else {
        return Ok(());
    };
    for span in scope.from_root() {
        if let Some(fields) = span.extensions().get::<FormattedFields<N>>()
            && !fields.is_empty()
        {
            each(fields)?;
        }
    }
    Ok(())
}
