use super::*;
use std::time::Duration;

/// Records as (stream, partial, text).
fn split(max: usize, chunks: &[&[u8]], eof: bool) -> Vec<(Stream, bool, Vec<u8>)> {
    let mut out = Vec::new();
    let mut splitter = LineSplitter::new(Stream::Stdout, max);
    let mut emit = |stream, partial, text: &[u8]| out.push((stream, partial, text.to_vec()));
    for chunk in chunks {
        splitter.feed(chunk, &mut emit);
    }
    if eof {
        splitter.finish(&mut emit);
    }
    out
}

fn full(text: &str) -> (Stream, bool, Vec<u8>) {
    (Stream::Stdout, false, text.as_bytes().to_vec())
}

fn part(text: &str) -> (Stream, bool, Vec<u8>) {
    (Stream::Stdout, true, text.as_bytes().to_vec())
}

#[test]
fn full_lines_across_reads() {
    assert_eq!(
        split(16, &[b"one\ntw", b"o\n\nthree\r\n"], true),
        vec![full("one"), full("two"), full(""), full("three")]
    );
}

#[test]
fn partial_last_line_is_flushed_at_eof_only() {
    assert_eq!(split(16, &[b"a\nno newline"], false), vec![full("a")]);
    assert_eq!(
        split(16, &[b"a\nno newline"], true),
        vec![full("a"), part("no newline")]
    );
    assert_eq!(split(16, &[b"a\n"], true), vec![full("a")]);
}

#[test]
fn long_lines_split_into_parts_of_max_len() {
    // A line of exactly the limit is one F record; one more byte makes a P and an F.
    assert_eq!(split(4, &[b"abcd\n"], true), vec![full("abcd")]);
    assert_eq!(split(4, &[b"abcde\n"], true), vec![part("abcd"), full("e")]);
    assert_eq!(
        split(4, &[b"ab", b"cdefghij", b"k\n"], true),
        vec![part("abcd"), part("efgh"), full("ijk")]
    );
    // A \r\n straddling the limit does not leave a stray \r part.
    assert_eq!(split(4, &[b"abcd\r", b"\n"], true), vec![full("abcd")]);
}

#[test]
fn sixteen_kib_lines_as_containerd() {
    let line = vec![b'x'; MAX_LINE * 2 + 10];
    let mut input = line.clone();
    input.push(b'\n');
    let records = split(MAX_LINE, &[&input], true);
    assert_eq!(records.len(), 3);
    assert!(records[0].1 && records[1].1 && !records[2].1);
    assert_eq!(records[0].2.len(), MAX_LINE);
    assert_eq!(records[1].2.len(), MAX_LINE);
    assert_eq!(records[2].2.len(), 10);
}

#[test]
fn records_carry_stream_tag_and_text() {
    let time = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
    let mut out = Vec::new();
    format_record(&mut out, time, Stream::Stderr, false, b"boom");
    format_record(&mut out, time, Stream::Stdout, true, b"");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "2023-11-14T22:13:20.000000005Z stderr F boom\n2023-11-14T22:13:20.000000005Z stdout P \n"
    );
}

#[test]
fn timestamps_are_utc_with_nanoseconds() {
    assert_eq!(
        format_timestamp(UNIX_EPOCH),
        "1970-01-01T00:00:00.000000000Z"
    );
    // 2024-02-29 (a leap day) 23:59:59.999999999
    let leap = UNIX_EPOCH + Duration::new(1_709_251_199, 999_999_999);
    assert_eq!(format_timestamp(leap), "2024-02-29T23:59:59.999999999Z");
    let y2k = UNIX_EPOCH + Duration::new(951_782_400, 123_000_000);
    assert_eq!(format_timestamp(y2k), "2000-02-29T00:00:00.123000000Z");
}

#[test]
fn log_file_reopens_after_rename() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut log = LogFile::open(Some(path.clone())).unwrap();
    log.write_record(Stream::Stdout, false, b"first");
    std::fs::rename(&path, dir.path().join("0.log.1")).unwrap();
    log.write_record(Stream::Stdout, false, b"second");
    log.reopen().unwrap();
    log.write_record(Stream::Stderr, false, b"third");
    let rotated = std::fs::read_to_string(dir.path().join("0.log.1")).unwrap();
    let current = std::fs::read_to_string(&path).unwrap();
    let rotated: Vec<_> = rotated
        .lines()
        .map(|l| l.split_once(' ').unwrap().1)
        .collect();
    assert_eq!(rotated, ["stdout F first", "stdout F second"]);
    assert_eq!(current.lines().count(), 1);
    assert!(current.ends_with(" stderr F third\n"));
}
