use crate::fixture::{Fixture, Spec, eventually, log_records};
use runtime_monitor::attach::{self, ClientFrame, ServerFrame};
use runtime_monitor::{ExitInfo, Monitor, MonitorConfig, MonitorError};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

type Case = fn(&Fixture) -> Result<(), String>;

pub const ALL: &[(&str, Case)] = &[
    (
        "logs_stdout_stderr_and_exit_code",
        logs_stdout_stderr_and_exit_code,
    ),
    ("exit_by_signal", exit_by_signal),
    ("oom_killed", oom_killed),
    ("reopen_after_rename", reopen_after_rename),
    ("tty", tty),
    ("attach_output_and_stdin_once", attach_output_and_stdin_once),
    (
        "create_failure_returns_runtime_stderr",
        create_failure_returns_runtime_stderr,
    ),
    ("monitor_outlives_its_spawner", monitor_outlives_its_spawner),
    ("spawner_killed_during_create", spawner_killed_during_create),
    ("monitor_killed_is_gone", monitor_killed_is_gone),
];

fn monitor_binary() -> std::path::PathBuf {
    std::env::current_exe().expect("the test binary's path")
}

fn spawn(cfg: &MonitorConfig) -> Result<Monitor, String> {
    runtime_monitor::spawn(&monitor_binary(), cfg).map_err(|e| e.to_string())
}

fn wait(cfg: &MonitorConfig) -> Result<ExitInfo, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(30),
            runtime_monitor::wait_exit(&cfg.state_dir),
        )
        .await
        .map_err(|_| "no exit within 30 s".to_string())?
        .map_err(|e| e.to_string())
    })
}

fn check(condition: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(what()) }
}

fn records(cfg: &MonitorConfig, stream: &str) -> Vec<String> {
    log_records(cfg.log_path.as_deref().unwrap())
        .into_iter()
        .filter(|r| r.starts_with(stream))
        .collect()
}

/// The monitor ends after the container and takes its cgroup with it.
fn monitor_gone(fixture: &Fixture, cfg: &MonitorConfig) -> Result<(), String> {
    eventually("the monitor to exit", || {
        !runtime_monitor::is_alive(&cfg.state_dir)
    })?;
    let dir = Path::new("/sys/fs/cgroup/memory")
        .join(fixture.cgroup_parent.trim_start_matches('/'))
        .join(format!("monitor-{}", cfg.container_id));
    check(!dir.exists(), || {
        format!("{} was left behind", dir.display())
    })
}

fn logs_stdout_stderr_and_exit_code(fixture: &Fixture) -> Result<(), String> {
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

fn exit_by_signal(fixture: &Fixture) -> Result<(), String> {
    let cfg = fixture.container(
        "signal",
        Spec {
            args: &["sleep", "100"],
            ..Spec::default()
        },
    );
    spawn(&cfg)?;
    fixture.runc(&["start", &cfg.container_id])?;
    check(
        runtime_monitor::read_exit(&cfg.state_dir)
            .map_err(|e| e.to_string())?
            .is_none(),
        || "an exit before the kill".into(),
    )?;
    fixture.runc(&["kill", &cfg.container_id, "KILL"])?;
    let exit = wait(&cfg)?;
    check(exit.code == 128 + 9 && !exit.oom_killed, || {
        format!("{exit:?}")
    })?;
    monitor_gone(fixture, &cfg)
}

fn oom_killed(fixture: &Fixture) -> Result<(), String> {
    let spec = Spec {
        // tail keeps the newline-free input in memory until the limit kills it.
        args: &["sh", "-c", "head -c 200m /dev/zero | tail"],
        memory_limit: Some(32 << 20),
        ..Spec::default()
    };
    let cfg = fixture.container("oom", spec);
    spawn(&cfg)?;
    fixture.runc(&["start", &cfg.container_id])?;
    let exit = wait(&cfg)?;
    check(exit.oom_killed && exit.code == 137, || format!("{exit:?}"))
}

fn reopen_after_rename(fixture: &Fixture) -> Result<(), String> {
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

fn tty(fixture: &Fixture) -> Result<(), String> {
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

fn attach_output_and_stdin_once(fixture: &Fixture) -> Result<(), String> {
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

fn create_failure_returns_runtime_stderr(fixture: &Fixture) -> Result<(), String> {
    let cfg = fixture.container(
        "badexec",
        Spec {
            args: &["/nonexistent"],
            ..Spec::default()
        },
    );
    match runtime_monitor::spawn(&monitor_binary(), &cfg) {
        Err(MonitorError::Create { message, .. }) if message.contains("/nonexistent") => {}
        other => return Err(format!("spawn of a missing executable: {other:?}")),
    }
    let recorded = std::fs::read_to_string(cfg.state_dir.join(runtime_monitor::files::CREATE_ERR))
        .map_err(|e| format!("create.err: {e}"))?;
    check(recorded.contains("/nonexistent"), || {
        format!("create.err: {recorded}")
    })?;
    check(
        runtime_monitor::read_exit(&cfg.state_dir)
            .map_err(|e| e.to_string())?
            .is_none(),
        || "an exit file for a container never created".into(),
    )?;
    monitor_gone(fixture, &cfg)
}

/// `<exe> spawner CONFIG`: a stand-in daemon that spawns a monitor, prints its pids and waits
/// to be killed.
pub fn spawner(config: &str) -> ExitCode {
    let cfg: MonitorConfig = serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    match runtime_monitor::spawn(&monitor_binary(), &cfg) {
        Ok(monitor) => {
            println!("{} {}", monitor.monitor_pid, monitor.container_pid);
            let _ = std::io::stdout().flush();
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        Err(error) => {
            println!("error {error}");
            ExitCode::FAILURE
        }
    }
}

/// Starts `<exe> spawner CONFIG` for `cfg`, its stdout piped.
fn start_spawner(fixture: &Fixture, cfg: &MonitorConfig) -> Result<std::process::Child, String> {
    let config = fixture
        .dir
        .path()
        .join(format!("{}-spawner.json", cfg.container_id));
    std::fs::write(&config, serde_json::to_vec(cfg).unwrap()).map_err(|e| e.to_string())?;
    Command::new(monitor_binary())
        .arg("spawner")
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())
}

fn kill_pid(pid: i32) -> Result<(), String> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .map_err(|e| format!("kill {pid}: {e}"))
}

fn proc_field(pid: i32, file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_string())
}

fn monitor_outlives_its_spawner(fixture: &Fixture) -> Result<(), String> {
    let script = "i=0; while [ $i -lt 50 ]; do echo line-$i; i=$((i+1)); sleep 0.02; done; exit 7";
    let cfg = fixture.container(
        "outlive",
        Spec {
            args: &["sh", "-c", script],
            ..Spec::default()
        },
    );
    let mut daemon = start_spawner(fixture, &cfg)?;
    let mut line = String::new();
    BufReader::new(daemon.stdout.take().unwrap())
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let monitor_pid: i32 = line
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("spawner said {line:?}"))?;
    // Not in the spawner's session, not its child, in its own cgroup in every hierarchy.
    let session = |pid: i32| nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(pid))).ok();
    check(session(monitor_pid) != session(daemon.id() as i32), || {
        "monitor shares the spawner's session".into()
    })?;
    let parent = proc_field(monitor_pid, "status", "PPid:");
    check(parent != Some(daemon.id().to_string()), || {
        "monitor is the spawner's child".into()
    })?;
    let cgroups =
        std::fs::read_to_string(format!("/proc/{monitor_pid}/cgroup")).unwrap_or_default();
    let own = format!("{}/monitor-{}", fixture.cgroup_parent, cfg.container_id);
    // "" is the unified (v2) hierarchy.
    for controller in ["memory", "name=systemd", "pids", "cpuset", ""] {
        let line = cgroups
            .lines()
            .find(|l| l.split(':').nth(1) == Some(controller));
        check(line.is_some_and(|l| l.ends_with(&own)), || {
            format!("monitor cgroups: {cgroups}")
        })?;
    }
    fixture.runc(&["start", &cfg.container_id])?;
    let log = cfg.log_path.clone().unwrap();
    eventually("some output", || log_records(&log).len() >= 5)?;
    // SIGKILL the daemon in the middle of the output.
    kill_pid(daemon.id() as i32)?;
    let _ = daemon.wait();
    check(runtime_monitor::is_alive(&cfg.state_dir), || {
        "the monitor died with its spawner".into()
    })?;
    let exit = wait(&cfg)?;
    check(exit.code == 7, || format!("{exit:?}"))?;
    let lines = log_records(&log);
    let expected: Vec<String> = (0..50).map(|i| format!("stdout F line-{i}")).collect();
    check(lines == expected, || {
        format!("{} records: {lines:?}", lines.len())
    })?;
    monitor_gone(fixture, &cfg)
}

/// The daemon dies while `create` runs: the monitor finishes it and records the pids, so a
/// restarted daemon finds the container created and can start and wait for it.
fn spawner_killed_during_create(fixture: &Fixture) -> Result<(), String> {
    let cfg = fixture.container(
        "cutoff",
        Spec {
            args: &["echo", "after-cutoff"],
            ..Spec::default()
        },
    );
    let mut daemon = start_spawner(fixture, &cfg)?;
    let identity = cfg.state_dir.join(runtime_monitor::files::MONITOR_PID);
    eventually("the monitor to start", || identity.exists())?;
    kill_pid(daemon.id() as i32)?;
    let _ = daemon.wait();
    eventually("the container to be created", || {
        matches!(runtime_monitor::read_monitor(&cfg.state_dir), Ok(Some(_)))
    })?;
    check(runtime_monitor::is_alive(&cfg.state_dir), || {
        "the monitor died with its spawner".into()
    })?;
    fixture.runc(&["start", &cfg.container_id])?;
    let exit = wait(&cfg)?;
    check(exit.code == 0, || format!("{exit:?}"))?;
    let logged = records(&cfg, "stdout");
    check(logged == ["stdout F after-cutoff"], || {
        format!("logged {logged:?}")
    })?;
    monitor_gone(fixture, &cfg)
}

/// A monitor killed outright leaves no exit file: wait_exit says it is gone instead of
/// waiting forever, and is_alive turns false.
fn monitor_killed_is_gone(fixture: &Fixture) -> Result<(), String> {
    let cfg = fixture.container(
        "killed",
        Spec {
            args: &["sleep", "100"],
            ..Spec::default()
        },
    );
    let monitor = spawn(&cfg)?;
    fixture.runc(&["start", &cfg.container_id])?;
    let waiter = {
        let state_dir = cfg.state_dir.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(runtime_monitor::wait_exit(&state_dir))
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    kill_pid(monitor.monitor_pid)?;
    match waiter
        .join()
        .map_err(|_| "the waiter panicked".to_string())?
    {
        Err(MonitorError::Gone { .. }) => {}
        other => return Err(format!("wait_exit after the monitor was killed: {other:?}")),
    }
    check(!runtime_monitor::is_alive(&cfg.state_dir), || {
        "is_alive after kill -9".into()
    })?;
    fixture.runc(&["delete", "--force", &cfg.container_id])
}
