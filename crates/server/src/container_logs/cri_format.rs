//! The CRI container log format: `<RFC3339Nano time> <stdout|stderr> <P|F> <message>`, one
//! line per write; P marks a partial line continued by the next entry.

use jiff::Timestamp;

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) time: Timestamp,
    /// The message, with a newline restored when the entry completes a line.
    pub(crate) message: Vec<u8>,
    pub(crate) partial: bool,
}

/// Parses one line of a CRI log file, without its trailing newline.
pub(crate) fn parse(line: &[u8]) -> Option<Entry> {
    let mut parts = line.splitn(4, |byte| *byte == b' ');
    let time: Timestamp = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let stream = parts.next()?;
    if stream != b"stdout" && stream != b"stderr" {
        return None;
    }
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    let mut message = parts.next().unwrap_or_default().to_vec();
    if !partial {
        message.push(b'\n');
    }
    Some(Entry {
        time,
        message,
        partial,
    })
}

/// Upstream's output time format: RFC 3339 in UTC with exactly nine fractional digits.
pub(crate) fn format_time(time: Timestamp) -> String {
    format!(
        "{}.{:09}Z",
        time.strftime("%Y-%m-%dT%H:%M:%S"),
        time.subsec_nanosecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_partial_lines() {
        let entry = parse(b"2024-01-02T03:04:05.123456789Z stdout F hello world").unwrap();
        assert_eq!(entry.message, b"hello world\n");
        assert!(!entry.partial);
        assert_eq!(format_time(entry.time), "2024-01-02T03:04:05.123456789Z");
        let entry = parse(b"2024-01-02T03:04:05.1+01:00 stderr P part").unwrap();
        assert_eq!(entry.message, b"part");
        assert_eq!(format_time(entry.time), "2024-01-02T02:04:05.100000000Z");
        assert_eq!(
            parse(b"2024-01-02T03:04:05Z stdout F ").unwrap().message,
            b"\n"
        );
        assert!(parse(b"garbage").is_none());
        assert!(parse(b"2024-01-02T03:04:05Z stdin F x").is_none());
    }
}
