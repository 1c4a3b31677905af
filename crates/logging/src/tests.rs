use super::*;
use std::io;
use std::sync::{Arc, Mutex};
use tracing::Level;

/// A writer that keeps what it is given, for exact comparisons.
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// 2026-12-02 04:40:53.555560 UTC, the fixed clock of the format tests.
pub(crate) fn fixed_time() -> jiff::Zoned {
    jiff::civil::date(2026, 12, 2)
        .at(4, 40, 53, 555_560_000)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
}

/// This thread's id, as both formats' callers see it.
pub(crate) fn thread_id() -> i32 {
    nix::unistd::gettid().as_raw()
}

#[test]
fn verbosity_maps_as_upstream() {
    let table = [
        (0, LevelFilter::INFO),
        (1, LevelFilter::INFO),
        (2, LevelFilter::DEBUG),
        (3, LevelFilter::DEBUG),
        (4, LevelFilter::TRACE),
        (10, LevelFilter::TRACE),
    ];
    for (verbosity, expected) in table {
        assert_eq!(level(verbosity), expected, "-v={verbosity}");
    }
    assert_eq!(verbosity_of(Level::ERROR), 0);
    assert_eq!(verbosity_of(Level::WARN), 0);
    assert_eq!(verbosity_of(Level::INFO), 0);
    assert_eq!(verbosity_of(Level::DEBUG), 2);
    assert_eq!(verbosity_of(Level::TRACE), 4);
}

#[test]
fn transport_frames_need_verbosity_six() {
    let at_two = crate::default_filter(2).to_string();
    assert!(
        at_two.contains("h2=info") && at_two.contains("debug"),
        "{at_two}"
    );
    let at_six = crate::default_filter(6).to_string();
    assert!(
        !at_six.contains("h2=") && at_six.contains("trace"),
        "{at_six}"
    );
}
