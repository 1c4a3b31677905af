//! The exec reaper: `<binary> monitor exec-reaper --pid-file FILE -- RUNTIME ARGS...`.
//!
//! A tty exec needs the OCI runtime's `exec --detach --console-socket` (runc honours a console
//! socket only when detached), and a detached exec's process is orphaned when the runtime
//! exits: only its nearest child subreaper can then read its exit status. The daemon must not be
//! a subreaper (it would inherit every monitor), so this small process is one for the length
//! of the session, as containerd's shim and conmon are for theirs.
//!
//! It reports on stdout, one line each: `started PID` once the runtime succeeded, then
//! `exited CODE` (the status, or 128 + the signal) when the process ended. The runtime's own
//! stderr passes through; if the runtime fails there is no `started` line and the reaper
//! exits 1.

use crate::exit::exit_code;
use nix::errno::Errno;
use nix::sys::wait::waitpid;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// The argument after `monitor` that selects the reaper.
pub(crate) const SUBCOMMAND: &str = "exec-reaper";

/// One line of the reaper's report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReaperReport {
    /// The runtime succeeded; the process runs with this (host) pid.
    Started(i32),
    /// The process ended with this code.
    Exited(i32),
}

impl ReaperReport {
    pub fn parse(line: &str) -> Option<ReaperReport> {
        let (word, number) = line.trim().split_once(' ')?;
        let number = number.parse().ok()?;
        match word {
            "started" => Some(ReaperReport::Started(number)),
            "exited" => Some(ReaperReport::Exited(number)),
            _ => None,
        }
    }
}

/// The command that runs `runtime` (a detached `exec` writing the process's pid to
/// `pid_file`) under a reaper started from `monitor_binary`.
pub fn exec_reaper_command(monitor_binary: &Path, pid_file: &Path, runtime: &Command) -> Command {
    let mut command = Command::new(monitor_binary);
    command
        .arg("monitor")
        .arg(SUBCOMMAND)
        .arg("--pid-file")
        .arg(pid_file)
        .arg("--")
        .arg(runtime.get_program())
        .args(runtime.get_args());
    command
}

pub(crate) fn main(args: &[String]) -> ExitCode {
    let (pid_file, argv) = match args {
        [flag, pid_file, dashes, argv @ ..]
            if flag == "--pid-file" && dashes == "--" && !argv.is_empty() =>
        {
            (PathBuf::from(pid_file), argv)
        }
        _ => {
            eprintln!("usage: monitor {SUBCOMMAND} --pid-file FILE -- RUNTIME ARGS...");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!("exec reaper: cannot become a subreaper: {error}");
        return ExitCode::FAILURE;
    }
    let runtime = Command::new(OsStr::new(&argv[0]))
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn();
    let runtime_pid = match runtime {
        Ok(child) => child.id() as i32,
        Err(error) => {
            eprintln!("exec reaper: cannot run {}: {error}", argv[0]);
            return ExitCode::FAILURE;
        }
    };
    // Children reaped before the runtime's exit named the process: the process itself may end
    // first (a quick command), orphaned to us the moment the runtime exits.
    let mut early: HashMap<i32, i32> = HashMap::new();
    let mut target = None;
    loop {
        let status = match waitpid(None, None) {
            Ok(status) => status,
            Err(Errno::EINTR) => continue,
            Err(error) => {
                eprintln!("exec reaper: the exec'd process was never seen to exit: {error}");
                return ExitCode::FAILURE;
            }
        };
        let Some(pid) = status.pid().map(|p| p.as_raw()) else {
            continue;
        };
        if pid == runtime_pid {
            if exit_code(status) != 0 {
                // The runtime printed why on our stderr.
                return ExitCode::FAILURE;
            }
            let Some(process) = read_pid(&pid_file) else {
                eprintln!(
                    "exec reaper: the runtime left no pid in {}",
                    pid_file.display()
                );
                return ExitCode::FAILURE;
            };
            report(ReaperReport::Started(process));
            if let Some(code) = early.remove(&process) {
                report(ReaperReport::Exited(code));
                return ExitCode::SUCCESS;
            }
            target = Some(process);
        } else if target == Some(pid) {
            report(ReaperReport::Exited(exit_code(status)));
            return ExitCode::SUCCESS;
        } else if target.is_none() {
            early.insert(pid, exit_code(status));
        }
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A daemon that went away is no error: the process still runs and is still reaped.
fn report(line: ReaperReport) {
    let text = match line {
        ReaperReport::Started(pid) => format!("started {pid}\n"),
        ReaperReport::Exited(code) => format!("exited {code}\n"),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_parse() {
        assert_eq!(
            ReaperReport::parse("started 42\n"),
            Some(ReaperReport::Started(42))
        );
        assert_eq!(
            ReaperReport::parse("exited 137"),
            Some(ReaperReport::Exited(137))
        );
        assert_eq!(ReaperReport::parse("exited"), None);
        assert_eq!(ReaperReport::parse("other 1"), None);
    }

    #[test]
    fn command_wraps_the_runtime() {
        let mut runtime = Command::new("/usr/bin/runc");
        runtime.args(["exec", "--detach", "c1"]);
        let command = exec_reaper_command(Path::new("/bin/kubelet"), Path::new("/tmp/p"), &runtime);
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(
            args,
            [
                "monitor",
                SUBCOMMAND,
                "--pid-file",
                "/tmp/p",
                "--",
                "/usr/bin/runc",
                "exec",
                "--detach",
                "c1"
            ]
        );
    }
}
