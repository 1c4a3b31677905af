//! How the container and its monitor end, and what survives whom.

use super::{check, monitor_binary, monitor_gone, records, spawn, wait};
use crate::fixture::{Fixture, Spec, eventually, log_records};
use runtime_monitor::{MonitorConfig, MonitorError};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

pub(super) fn exit_by_signal(fixture: &Fixture) -> Result<(), String> {
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

pub(super) fn oom_killed(fixture: &Fixture) -> Result<(), String> {
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

pub(super) fn create_failure_returns_runtime_stderr(fixture: &Fixture) -> Result<(), String> {
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

pub(super) fn monitor_outlives_its_spawner(fixture: &Fixture) -> Result<(), String> {
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
pub(super) fn spawner_killed_during_create(fixture: &Fixture) -> Result<(), String> {
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
pub(super) fn monitor_killed_is_gone(fixture: &Fixture) -> Result<(), String> {
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
