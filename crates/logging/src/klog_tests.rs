use super::*;
use crate::tests::{Capture, fixed_time, thread_id};

/// Runs `emit` under a klog subscriber with the fixed clock and returns what it wrote.
fn klog(ansi: bool, emit: impl FnOnce()) -> String {
    let out = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(out.clone())
        .with_ansi(ansi)
        .with_max_level(tracing::Level::TRACE)
        .fmt_fields(KlogFields)
        .event_format(Klog::with_clock(fixed_time))
        .finish();
    tracing::subscriber::with_default(subscriber, emit);
    out.text()
}

fn header(severity: char, line: u32) -> String {
    format!(
        "{severity}1202 04:40:53.555560 {:>7} klog_tests.rs:{line}] ",
        thread_id()
    )
}

#[test]
fn structured_line_with_span_fields() {
    let mut line = 0;
    let text = klog(false, || {
        let span = tracing::info_span!("pod", pod_uid = "1f2e", namespace = "default");
        let _entered = span.enter();
        line = line!() + 1;
        tracing::info!(
            container = "app",
            restarts = 3,
            ready = true,
            "Container started"
        );
    });
    assert_eq!(
        text,
        format!(
            "{}\"Container started\" pod_uid=\"1f2e\" namespace=\"default\" container=\"app\" restarts=3 ready=true\n",
            header('I', line)
        )
    );
}

#[test]
fn errors_warnings_and_debug_levels() {
    let mut lines = [0; 3];
    let text = klog(false, || {
        lines[0] = line!() + 1;
        tracing::error!(
            error = "connection refused",
            attempt = 2,
            "Cannot reach the API server"
        );
        lines[1] = line!() + 1;
        tracing::warn!("Low disk");
        lines[2] = line!() + 1;
        tracing::debug!(path = %"/var/lib/kubelet", "Scanned");
    });
    let expected = [
        format!(
            "{}\"Cannot reach the API server\" err=\"connection refused\" attempt=2\n",
            header('E', lines[0])
        ),
        format!("{}\"Low disk\"\n", header('W', lines[1])),
        format!(
            "{}\"Scanned\" path=\"/var/lib/kubelet\"\n",
            header('I', lines[2])
        ),
    ]
    .concat();
    assert_eq!(text, expected);
}

#[test]
fn quoting_follows_go() {
    let mut line = 0;
    let text = klog(false, || {
        line = line!() + 1;
        tracing::info!(value = "tab\there \"q\" back\\slash \u{1} é", "say \"hi\"");
    });
    assert_eq!(
        text,
        format!(
            "{}\"say \\\"hi\\\"\" value=\"tab\\there \\\"q\\\" back\\\\slash \\x01 é\"\n",
            header('I', line)
        )
    );
}

#[test]
fn multi_line_values_become_blocks() {
    let mut line = 0;
    let text = klog(false, || {
        line = line!() + 1;
        tracing::info!(output = "line 1\nline 2", ended = "last\n", "Probe output");
    });
    assert_eq!(
        text,
        format!(
            "{}\"Probe output\" output=<\n\tline 1\n\tline 2\n > ended=<\n\tlast\n >\n",
            header('I', line)
        )
    );
}

#[test]
fn colour_only_on_request_and_only_for_warnings_and_errors() {
    let mut lines = [0; 2];
    let text = klog(true, || {
        lines[0] = line!() + 1;
        tracing::error!("Broken");
        lines[1] = line!() + 1;
        tracing::info!("Fine");
    });
    assert_eq!(
        text,
        format!(
            "\x1b[31m{}\x1b[0m\"Broken\"\n{}\"Fine\"\n",
            header('E', lines[0]),
            header('I', lines[1])
        )
    );
}
