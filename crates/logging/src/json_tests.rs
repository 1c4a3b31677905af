use super::*;
use crate::tests::{Capture, fixed_time};

fn json(emit: impl FnOnce()) -> String {
    let out = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(out.clone())
        .with_ansi(true)
        .with_max_level(tracing::Level::TRACE)
        .fmt_fields(JsonFields)
        .event_format(Json::with_clock(|| fixed_time().timestamp()))
        .finish();
    tracing::subscriber::with_default(subscriber, emit);
    out.text()
}

#[test]
fn info_line_with_span_fields() {
    let mut line = 0;
    let text = json(|| {
        let span = tracing::info_span!("pod", pod_uid = "1f2e", namespace = "default");
        let _entered = span.enter();
        line = line!() + 1;
        tracing::info!(container = "app", restarts = 3, "Container started");
    });
    assert_eq!(
        text,
        format!(
            "{{\"ts\":1796186453555.5598,\"caller\":\"src/json_tests.rs:{line}\",\"msg\":\"Container started\",\"pod_uid\":\"1f2e\",\"namespace\":\"default\",\"v\":0,\"container\":\"app\",\"restarts\":3}}\n"
        )
    );
}

#[test]
fn error_lines_have_err_and_no_v() {
    let mut line = 0;
    let text = json(|| {
        line = line!() + 1;
        tracing::error!(
            error = "connection refused",
            attempt = 2,
            "Cannot reach \"api\""
        );
    });
    assert_eq!(
        text,
        format!(
            "{{\"ts\":1796186453555.5598,\"caller\":\"src/json_tests.rs:{line}\",\"msg\":\"Cannot reach \\\"api\\\"\",\"attempt\":2,\"err\":\"connection refused\"}}\n"
        )
    );
}

#[test]
fn verbosity_of_debug_and_trace() {
    let text = json(|| {
        tracing::debug!("steady state");
        tracing::trace!("details");
    });
    let vs: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["v"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(vs, [2, 4]);
}

#[test]
fn short_caller_keeps_the_last_directory() {
    assert_eq!(
        short_caller(Some("crates/kubelet/src/app.rs")),
        "src/app.rs"
    );
    assert_eq!(short_caller(Some("app.rs")), "app.rs");
    assert_eq!(short_caller(None), "???");
}
