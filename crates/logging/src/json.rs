//! component-base's JSON format (k8s.io/component-base/logs/json, zap underneath): `ts` in
//! milliseconds since the epoch as a float, `caller` as dir/file:line, `msg`, the span
//! fields, `v` on everything but errors, the event's pairs, and `err` last.

use crate::fields::{self, Value};
use jiff::Timestamp;
use std::fmt::{self, Write};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The JSON line formatter.
pub struct Json {
    now: fn() -> Timestamp,
}

impl Default for Json {
    fn default() -> Self {
        Json {
            now: Timestamp::now,
        }
    }
}

impl Json {
    #[cfg(test)]
    pub(crate) fn with_clock(now: fn() -> Timestamp) -> Self {
        Json { now }
    }
}

/// Span fields as JSON members (`"key":value`, comma-separated), kept with the span.
pub struct JsonFields;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        record: R,
    ) -> fmt::Result {
        let fields = fields::collect(record);
        let err = fields.err.map(|err| ("err", Value::Text(err)));
        let mut first = true;
        for (key, value) in fields.pairs.iter().chain(err.iter()) {
            if !first {
                writer.write_char(',')?;
            }
            first = false;
            write_member(&mut writer, key, value)?;
        }
        Ok(())
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        if !current.fields.is_empty() {
            current.fields.push(',');
        }
        self.format_fields(current.as_writer(), fields)
    }
}

impl<S> FormatEvent<S, JsonFields> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let fields = fields::collect(event);
        let (file, line) = fields::location(&fields, meta);
        // zap's epochMillisTimeEncoder: a float64 of milliseconds.
        let millis = (self.now)().as_nanosecond() as f64 / 1e6;
        write!(writer, "{{\"ts\":{millis}")?;
        writer.write_char(',')?;
        write_member(
            &mut writer,
            "caller",
            &Value::Text(format!("{}:{line}", short_caller(file.as_deref()))),
        )?;
        writer.write_char(',')?;
        write_member(
            &mut writer,
            "msg",
            &Value::Text(fields.message.unwrap_or_default()),
        )?;
        fields::for_each_span(ctx, |members| write!(writer, ",{members}"))?;
        if *meta.level() != Level::ERROR {
            write!(writer, ",\"v\":{}", crate::verbosity_of(*meta.level()))?;
        }
        for (key, value) in &fields.pairs {
            writer.write_char(',')?;
            write_member(&mut writer, key, value)?;
        }
        if let Some(err) = fields.err {
            writer.write_char(',')?;
            write_member(&mut writer, "err", &Value::Text(err))?;
        }
        writer.write_str("}\n")
    }
}

/// zap's ShortCallerEncoder: the last directory and the file name.
fn short_caller(file: Option<&str>) -> &str {
    let Some(file) = file else {
        return "???";
    };
    match file.rmatch_indices('/').nth(1) {
        Some((slash, _)) => &file[slash + 1..],
        None => file,
    }
}

fn write_member(out: &mut impl Write, key: &str, value: &Value) -> fmt::Result {
    write_string(out, key)?;
    out.write_char(':')?;
    match value {
        Value::Plain(text) => out.write_str(text),
        Value::Text(text) => write_string(out, text),
    }
}

fn write_string(out: &mut impl Write, text: &str) -> fmt::Result {
    let quoted = serde_json::to_string(text).map_err(|_| fmt::Error)?;
    out.write_str(&quoted)
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
