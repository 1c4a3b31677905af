//! The binary's own log lines, as log tooling reads them: klog's text header by default,
//! upstream's JSON schema with --logging-format=json. The kubelet is started against a runtime
//! socket that does not exist, so it logs its flag warnings and the error, then exits.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// The kubelet's stderr lines for `extra` flags; it must exit with an error.
fn log_lines(extra: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("unix://{}/none.sock", dir.path().display());
    let out = Command::new(env!("CARGO_BIN_EXE_kubelet"))
        .args([
            "--container-runtime-endpoint",
            &socket,
            "--pod-infra-container-image=pause",
            "--root-dir",
        ])
        .arg(dir.path().join("root"))
        .args(extra)
        .env_remove("KUBELET_LOG")
        .output()
        .expect("run the kubelet binary");
    assert!(
        !out.status.success(),
        "the kubelet should fail without a runtime"
    );
    String::from_utf8(out.stderr)
        .unwrap()
        .lines()
        // The plain summary main prints for a person at a terminal.
        .filter(|line| !line.starts_with("Error: "))
        .map(str::to_owned)
        .collect()
}

/// `I1202 04:40:53.555560   17145 app.rs:74] "msg"...`: severity, file name and the rest.
fn klog_line(line: &str) -> Option<(char, &str, &str)> {
    let severity = line.chars().next().filter(|c| "IWEF".contains(*c))?;
    let (date, rest) = line[1..].split_once(' ')?;
    let (time, rest) = rest.split_once(' ')?;
    let (hms, micros) = time.split_once('.')?;
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let hms_ok = hms.split(':').count() == 3 && hms.split(':').all(|p| digits(p, 2));
    if !digits(date, 4) || !hms_ok || !digits(micros, 6) {
        return None;
    }
    // The thread id, right-aligned in seven columns.
    let tid_field = rest.get(..7)?;
    if !rest[7..].starts_with(' ') || !digits(tid_field.trim_start(), tid_field.trim_start().len())
    {
        return None;
    }
    let (location, message) = rest[8..].split_once("] ")?;
    let (file, number) = location.split_once(':')?;
    (!file.contains('/') && number.parse::<u32>().is_ok()).then_some((severity, file, message))
}

#[test]
fn text_lines_are_klog() {
    let lines = log_lines(&[]);
    assert!(!lines.is_empty(), "no log lines");
    for line in &lines {
        let (_, file, message) =
            klog_line(line).unwrap_or_else(|| panic!("not a klog line: {line:?}"));
        assert!(file.ends_with(".rs"), "{line}");
        assert!(message.starts_with('"'), "the message is quoted: {line}");
    }
    let warning = lines
        .iter()
        .find(|l| l.contains("flag --pod-infra-container-image has no effect"))
        .unwrap_or_else(|| panic!("no flag warning in {lines:#?}"));
    assert_eq!(klog_line(warning).unwrap().0, 'W');
    let error = lines.last().unwrap();
    let (severity, file, message) = klog_line(error).unwrap();
    assert_eq!((severity, file), ('E', "main.rs"), "{error}");
    assert!(
        message
            .starts_with("\"exiting on an error\" err=\"cannot connect to the container runtime"),
        "{error}"
    );
}

#[test]
fn json_lines_follow_the_component_base_schema() {
    let lines = log_lines(&["--logging-format=json"]);
    assert!(!lines.is_empty(), "no log lines");
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    for line in &lines {
        assert!(line.starts_with("{\"ts\":"), "ts comes first: {line}");
        let caller = line.find("\"caller\":").expect(line);
        let msg = line.find("\"msg\":").expect(line);
        assert!(caller < msg, "caller before msg: {line}");
        let value: serde_json::Value = serde_json::from_str(line).expect(line);
        let ts = value["ts"].as_f64().expect("ts is a number");
        assert!(
            (now_ms - ts).abs() < 120_000.0,
            "ts in milliseconds: {line}"
        );
        let caller = value["caller"].as_str().unwrap();
        let (file, number) = caller.rsplit_once(':').unwrap();
        assert!(
            file.ends_with(".rs") && number.parse::<u32>().is_ok(),
            "{line}"
        );
        assert!(value["msg"].is_string(), "{line}");
    }
    let warning = lines
        .iter()
        .find(|l| l.contains("flag --pod-infra-container-image has no effect"))
        .unwrap_or_else(|| panic!("no flag warning in {lines:#?}"));
    let warning: serde_json::Value = serde_json::from_str(warning).unwrap();
    assert_eq!(warning["v"], 0);
    let error: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(error["msg"], "exiting on an error");
    assert!(error.get("v").is_none(), "error lines carry no v: {error}");
    let err = error["err"].as_str().expect("err");
    assert!(
        err.starts_with("cannot connect to the container runtime"),
        "{err}"
    );
}
