//! The CRI container log format, as containerd's pkg/cri/io/logger.go writes it:
//! `TIMESTAMP STREAM TAG TEXT\n`, TAG `F` for a whole line and `P` for a part of one.
//!
//! Containerd's rules, kept here: the newline (and a `\r` right before it) is dropped; a line
//! longer than [`MAX_LINE`] bytes is cut into parts of exactly that size tagged `P`, the rest
//! following; output that ends without a newline is written as `P` at EOF; an empty line is an
//! `F` record with empty text. The timestamp is UTC with nine fractional digits (containerd's
//! Go RFC3339Nano drops trailing zeros; fixed width sorts and parses the same, as CRI-O does).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// containerd's default `max_container_log_line_size`.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Cuts one stream's bytes into CRI records; keeps the unfinished line between reads.
#[derive(Debug)]
pub struct LineSplitter {
    stream: Stream,
    max_line: usize,
    pending: Vec<u8>,
}

impl LineSplitter {
    pub fn new(stream: Stream, max_line: usize) -> Self {
        LineSplitter {
            stream,
            max_line,
            pending: Vec::new(),
        }
    }

    /// Feeds bytes read from the stream; `emit(stream, partial, text)` gets each finished record.
    pub fn feed(&mut self, mut data: &[u8], emit: &mut dyn FnMut(Stream, bool, &[u8])) {
        while !data.is_empty() {
            let (chunk, newline) = match data.iter().position(|b| *b == b'\n') {
                Some(at) => (&data[..at], true),
                None => (data, false),
            };
            self.pending.extend_from_slice(chunk);
            self.cut_parts(emit);
            if newline {
                if self.pending.last() == Some(&b'\r') {
                    self.pending.pop();
                }
                emit(self.stream, false, &self.pending);
                self.pending.clear();
                data = &data[chunk.len() + 1..];
            } else {
                data = &[];
            }
        }
    }

    /// The stream ended: an unfinished line is written as a part.
    pub fn finish(&mut self, emit: &mut dyn FnMut(Stream, bool, &[u8])) {
        if !self.pending.is_empty() {
            emit(self.stream, true, &self.pending);
            self.pending.clear();
        }
    }

    /// Writes `P` parts while more than `max_line` bytes wait. A `\r` just past the limit stays,
    /// as containerd keeps it for a `\r\n` that straddles its read buffer.
    fn cut_parts(&mut self, emit: &mut dyn FnMut(Stream, bool, &[u8])) {
        while self.pending.len() > self.max_line
            && !(self.pending.len() == self.max_line + 1 && self.pending[self.max_line] == b'\r')
        {
            emit(self.stream, true, &self.pending[..self.max_line]);
            self.pending.drain(..self.max_line);
        }
    }
}

/// Appends one record to `out`.
pub fn format_record(
    out: &mut Vec<u8>,
    time: SystemTime,
    stream: Stream,
    partial: bool,
    text: &[u8],
) {
    out.extend_from_slice(format_timestamp(time).as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.name().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(text);
    out.push(b'\n');
}

/// `YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ` in UTC.
pub fn format_timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The log file, opened for append and reopened on request (after the kubelet rotated it).
#[derive(Debug)]
pub struct LogFile {
    path: Option<PathBuf>,
    file: Option<File>,
    record: Vec<u8>,
    /// Set after a failed write so a full disk logs one warning, not one per line.
    failing: bool,
}

impl LogFile {
    /// Opens `path` (creating it); None discards everything.
    pub fn open(path: Option<PathBuf>) -> io::Result<Self> {
        let file = path.as_deref().map(open_append).transpose()?;
        Ok(LogFile {
            path,
            file,
            record: Vec::new(),
            failing: false,
        })
    }

    /// Closes the file and opens the path again, creating a new file if it was renamed away.
    pub fn reopen(&mut self) -> io::Result<()> {
        if let Some(path) = &self.path {
            self.file = Some(open_append(path)?);
            self.failing = false;
        }
        Ok(())
    }

    /// Writes one record with a single append, so a reader never sees half of it from us.
    pub fn write_record(&mut self, stream: Stream, partial: bool, text: &[u8]) {
        let Some(file) = &mut self.file else { return };
        self.record.clear();
        format_record(&mut self.record, SystemTime::now(), stream, partial, text);
        match file.write_all(&self.record) {
            Ok(()) => self.failing = false,
            // Keep draining the container's output even when the disk is full.
            Err(error) if !self.failing => {
                self.failing = true;
                tracing::warn!(path = ?self.path, %error, "cannot write the container log");
            }
            Err(_) => {}
        }
    }
}

fn open_append(path: &std::path::Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

#[cfg(test)]
#[path = "cri_log_tests.rs"]
mod tests;
