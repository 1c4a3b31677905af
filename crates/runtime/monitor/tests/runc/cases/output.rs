//! What the container writes: the CRI log, reopening it, tty, attach.

use super::{check, monitor_gone, records, spawn, wait};
use crate::fixture::{Fixture, Spec, eventually, log_records};
use runtime_monitor::MonitorError;
use runtime_monitor::attach::{self, ClientFrame, ServerFrame};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

pub(super) fn logs_stdout_stderr_and_exit_code(fixture: &Fixture) -> Result<(), String> {
    let script = "echo out1; echo err1 >&2; echo; echo out2; \
                  head -c 40000 /dev/zero | tr '\\0' x; echo; printf tail; exit 3";
    let cfg = fixture.container(
        "logs",
        Spec {
            args: &["sh", "-c", script],
            ..Spec::default()
        },
    );
    let monitor = spawn(&cfg)?;
    check(monitor.container_pid > 0 && monitor.monitor_pid > 0, || {
        format!("{monitor:?}")
    })?;
    let recorded = runtime_monitor::read_monitor(&cfg.state_dir).map_err(|e| e.to_string())?;
    check(recorded == Some(monitor), || {
        format!("recorded {recorded:?}, spawned {monitor:?}")
    })?;
    check(runtime_monitor::is_alive(&cfg.state_dir), || {
        "monitor not alive".into()
    })?;
    fixture.runc(&["start", &cfg.container_id])?;
    let exit = wait(&cfg)?;
    check(exit.code == 3 && !exit.oom_killed, || format!("{exit:?}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let age = now.as_nanos() as i64 - exit.finished_at_ns;
    check((0..30_000_000_000).contains(&age), || {
        format!("finished_at {}", exit.finished_at_ns)
    })?;
    let x = |n| "x".repeat(n);
    let expected = vec![
        "stdout F out1".to_string(),
        "stdout F ".to_string(),
        "stdout F out2".to_string(),
        format!("stdout P {}", x(16384)),
        format!("stdout P {}", x(16384)),
        format!("stdout F {}", x(40000 - 2 * 16384)),
        "stdout P tail".to_string(),
    ];
    let stdout = records(&cfg, "stdout");
    check(stdout == expected, || format!("stdout records: {stdout:?}"))?;
    let stderr = records(&cfg, "stderr");
    check(stderr == ["stderr F err1"], || {
        format!("stderr records: {stderr:?}")
    })?;
    monitor_gone(fixture, &cfg)
}

pub(super) fn reopen_after_rename(fixture: &Fixture) -> Result<(), String> {
    let shared = fixture.dir.path().join("shared-reopen");
    std::fs::create_dir_all(&shared).map_err(|e| e.to_string())?;
    let script = "echo before; while [ ! -e /shared/go ]; do sleep 0.05; done; echo after";
    let spec = Spec {
        args: &["sh", "-c", script],
        shared: Some(&shared),
        ..Spec::default()
    };
    let cfg = fixture.container("reopen", spec);
    let log = cfg.log_path.clone().unwrap();
    spawn(&cfg)?;
    fixture.runc(&["start", &cfg.container_id])?;
    eventually("the first line", || !log_records(&log).is_empty())?;
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).map_err(|e| e.to_string())?;
    runtime_monitor::reopen_log(&cfg.state_dir).map_err(|e| e.to_string())?;
    check(log.exists(), || "reopen created no new log".into())?;
    std::fs::write(shared.join("go"), "").map_err(|e| e.to_string())?;
    let exit = wait(&cfg)?;
    check(exit.code == 0, || format!("{exit:?}"))?;
    let (old, new) = (log_records(&rotated), log_records(&log));
    check(
        old == ["stdout F before"] && new == ["stdout F after"],
        || format!("rotated {old:?}, new {new:?}"),
    )?;
    // After the exit the monitor is gone and says so.
    monitor_gone(fixture, &cfg)?;
    match runtime_monitor::reopen_log(&cfg.state_dir) {
        Err(MonitorError::Control { .. }) => Ok(()),
        other => Err(format!("reopen after exit: {other:?}")),
    }
}

pub(super) fn tty(fixture: &Fixture) -> Result<(), String> {
    let script = "[ -t 1 ] && echo is-a-tty; stty size; printf no-newline";
    let spec = Spec {
        args: &["sh", "-c", script],
        tty: true,
        ..Spec::default()
    };
    let mut cfg = fixture.container("tty", spec);
    // Longer than sun_path allows: the sockets are reached through /proc instead.
    cfg.state_dir = fixture.dir.path().join("long").join("t".repeat(100));
    spawn(&cfg)?;
    let mut client = attach::connect(&cfg.state_dir).map_err(|e| format!("attach: {e}"))?;
    let mut resize = Vec::new();
    ClientFrame::Resize {
        width: 123,
        height: 45,
    }
    .encode(&mut resize);
    client.write_all(&resize).map_err(|e| e.to_string())?;
    // The resize is applied once the monitor read it; give its loop a turn before the start.
    std::thread::sleep(Duration::from_millis(200));
    fixture.runc(&["start", &cfg.container_id])?;
    let exit = wait(&cfg)?;
    check(exit.code == 0, || format!("{exit:?}"))?;
    eventually("the monitor to exit", || {
        !runtime_monitor::is_alive(&cfg.state_dir)
    })?;
    let all = log_records(cfg.log_path.as_deref().unwrap());
    let expected = [
        "stdout F is-a-tty",
        "stdout F 45 123",
        "stdout P no-newline",
    ];
    check(all == expected, || format!("tty records: {all:?}"))?;
    let (stdout, _, code) = read_frames(&mut client)?;
    check(code == 0 && stdout.contains("is-a-tty\r\n"), || {
        format!("attach saw {stdout:?}")
    })
}

/// Reads frames until the exit frame: (stdout, stderr, exit code).
fn read_frames(stream: &mut UnixStream) -> Result<(String, String, i32), String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let (mut stdout, mut stderr, mut buf) = (Vec::new(), Vec::new(), Vec::new());
    let mut chunk = [0u8; 4096];
    loop {
        while let Some((frame, used)) = ServerFrame::decode(&buf).map_err(|e| e.to_string())? {
            buf.drain(..used);
            match frame {
                ServerFrame::Stdout(data) => stdout.extend(data),
                ServerFrame::Stderr(data) => stderr.extend(data),
                ServerFrame::Exit(code) => {
                    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
                    return Ok((text(stdout), text(stderr), code));
                }
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err("attach closed without an exit frame".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("attach read: {e}")),
        }
    }
}

pub(super) fn attach_output_and_stdin_once(fixture: &Fixture) -> Result<(), String> {
    let spec = Spec {
        args: &["sh", "-c", "cat; echo done; echo to-err >&2"],
        stdin: true,
        stdin_once: true,
        ..Spec::default()
    };
    let cfg = fixture.container("attach", spec);
    spawn(&cfg)?;
    let mut reader = attach::connect(&cfg.state_dir).map_err(|e| format!("attach: {e}"))?;
    fixture.runc(&["start", &cfg.container_id])?;
    {
        // A second client writes stdin and leaves: stdin_once closes the container's stdin.
        let mut writer = attach::connect(&cfg.state_dir).map_err(|e| format!("attach: {e}"))?;
        let mut frame = Vec::new();
        ClientFrame::Stdin(b"hello\nworld\n".to_vec()).encode(&mut frame);
        writer.write_all(&frame).map_err(|e| e.to_string())?;
    }
    let (stdout, stderr, code) = read_frames(&mut reader)?;
    check(
        stdout == "hello\nworld\ndone\n" && stderr == "to-err\n" && code == 0,
        || format!("attach saw stdout {stdout:?}, stderr {stderr:?}, code {code}"),
    )?;
    let exit = wait(&cfg)?;
    check(exit.code == 0, || format!("{exit:?}"))?;
    let logged = records(&cfg, "stdout");
    check(
        logged == ["stdout F hello", "stdout F world", "stdout F done"],
        || format!("logged {logged:?}"),
    )
}

/// In the host's PID namespace a background process outlives the container's init: the exit
/// is recorded at once, the orphan is reaped by the monitor (its subreaper), and what it
/// writes within the drain window still reaches the log.
pub(super) fn output_of_orphans_after_exit(fixture: &Fixture) -> Result<(), String> {
    let spec = Spec {
        args: &["sh", "-c", "(sleep 0.5; echo late) & echo early; exit 4"],
        host_pid: true,
        ..Spec::default()
    };
    let cfg = fixture.container("orphans", spec);
    spawn(&cfg)?;
    fixture.runc(&["start", &cfg.container_id])?;
    let exit = wait(&cfg)?;
    check(exit.code == 4, || format!("{exit:?}"))?;
    check(
        records(&cfg, "stdout").first().map(String::as_str) == Some("stdout F early"),
        || format!("at exit: {:?}", records(&cfg, "stdout")),
    )?;
    monitor_gone(fixture, &cfg)?;
    let logged = records(&cfg, "stdout");
    check(logged == ["stdout F early", "stdout F late"], || {
        format!("logged {logged:?}")
    })
}
