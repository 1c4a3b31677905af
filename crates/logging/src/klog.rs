//! klog's text format: `Lmmdd hh:mm:ss.uuuuuu threadid file:line] "msg" key="value" ...`,
//! with klog's quoting (Go's strconv.Quote, multi-line values as an indented block).

use crate::fields::{self, Value};
use jiff::Zoned;
use std::fmt::{self, Write};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The klog line formatter.
pub struct Klog {
    now: fn() -> Zoned,
}

impl Default for Klog {
    fn default() -> Self {
        Klog { now: Zoned::now }
    }
}

impl Klog {
    #[cfg(test)]
    pub(crate) fn with_clock(now: fn() -> Zoned) -> Self {
        Klog { now }
    }
}

/// Span fields as klog key/value pairs (` key="value"` each), kept with the span so every
/// line inside it carries them.
pub struct KlogFields;

impl<'writer> FormatFields<'writer> for KlogFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        record: R,
    ) -> fmt::Result {
        let fields = fields::collect(record);
        if let Some(err) = &fields.err {
            write_pair(&mut writer, "err", &Value::Text(err.clone()))?;
        }
        for (key, value) in &fields.pairs {
            write_pair(&mut writer, key, value)?;
        }
        Ok(())
    }

    // Each pair brings its own leading space: no separator needed between records.
    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        self.format_fields(current.as_writer(), fields)
    }
}

impl<S> FormatEvent<S, KlogFields> for Klog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, KlogFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let fields = fields::collect(event);
        let (file, line) = fields::location(&fields, meta);
        let colour = match *meta.level() {
            _ if !writer.has_ansi_escapes() => None,
            Level::ERROR => Some("\x1b[31m"),
            Level::WARN => Some("\x1b[33m"),
            _ => None,
        };
        if let Some(code) = colour {
            writer.write_str(code)?;
        }
        write_header(
            &mut writer,
            *meta.level(),
            &(self.now)(),
            nix::unistd::gettid().as_raw(),
            file.as_deref(),
            line,
        )?;
        if colour.is_some() {
            writer.write_str("\x1b[0m")?;
        }
        write_quoted(&mut writer, fields.message.as_deref().unwrap_or(""))?;
        if let Some(err) = &fields.err {
            write_pair(&mut writer, "err", &Value::Text(err.clone()))?;
        }
        fields::for_each_span(ctx, |pairs| writer.write_str(pairs))?;
        for (key, value) in &fields.pairs {
            write_pair(&mut writer, key, value)?;
        }
        writer.write_char('\n')
    }
}

/// `I1202 04:40:53.555560   17145 app.rs:74] `: severity, date and time to the microsecond,
/// the thread id right-aligned in 7 columns, the file's base name and the line.
fn write_header(
    out: &mut impl Write,
    level: Level,
    now: &Zoned,
    thread: i32,
    file: Option<&str>,
    line: u64,
) -> fmt::Result {
    let severity = match level {
        Level::ERROR => 'E',
        Level::WARN => 'W',
        _ => 'I',
    };
    let file = file.map_or("???", |f| f.rsplit('/').next().unwrap_or(f));
    write!(
        out,
        "{severity}{:02}{:02} {:02}:{:02}:{:02}.{:06} {thread:>7} {file}:{line}] ",
        now.month(),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.subsec_nanosecond() / 1000,
    )
}

/// ` key=value`: text quoted, or as a block when it spans lines; numbers and booleans bare.
fn write_pair(out: &mut impl Write, key: &str, value: &Value) -> fmt::Result {
    write!(out, " {key}=")?;
    match value {
        Value::Plain(text) => out.write_str(text),
        Value::Text(text) if text.contains('\n') => write_block(out, text),
        Value::Text(text) => write_quoted(out, text),
    }
}

/// klog's multi-line value: `<`, each line indented by a tab, then ` >` on a line of its own.
fn write_block(out: &mut impl Write, text: &str) -> fmt::Result {
    out.write_str("<\n")?;
    for line in text.split_inclusive('\n') {
        write!(out, "\t{line}")?;
    }
    if !text.ends_with('\n') {
        out.write_char('\n')?;
    }
    out.write_str(" >")
}

/// Go's strconv.Quote: printable characters as they are, the usual backslash escapes, other
/// control characters as \x, \u or \U escapes.
pub(crate) fn write_quoted(out: &mut impl Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    for c in text.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            '\u{07}' => out.write_str("\\a")?,
            '\u{08}' => out.write_str("\\b")?,
            '\u{0c}' => out.write_str("\\f")?,
            '\u{0b}' => out.write_str("\\v")?,
            c if (c as u32) < 0x20 || c == '\u{7f}' => write!(out, "\\x{:02x}", c as u32)?,
            c if c.is_control() || c == '\u{feff}' => match c as u32 {
                code @ 0..=0xffff => write!(out, "\\u{code:04x}")?,
                code => write!(out, "\\U{code:08x}")?,
            },
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

#[cfg(test)]
#[path = "klog_tests.rs"]
mod tests;
