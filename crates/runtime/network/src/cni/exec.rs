//! Running one CNI plugin: the CNI_* variables on its own Command (never the daemon's
//! environment), the netconf on stdin, a time limit, and its JSON error turned into ours.

use crate::NetworkError;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// What every plugin of one ADD or DEL is told.
#[derive(Debug, Clone)]
pub(crate) struct Invocation<'a> {
    pub command: &'static str,
    pub sandbox_id: &'a str,
    /// Empty when the namespace is gone (CNI allows DEL without one).
    pub netns: &'a str,
    pub ifname: &'a str,
    pub cni_args: &'a str,
    pub bin_dirs: &'a [PathBuf],
    pub timeout: Duration,
}

/// The first `plugin` executable in the bin dirs, searched in order as libcni's FindInPath.
pub(crate) fn find_plugin(plugin: &str, bin_dirs: &[PathBuf]) -> Result<PathBuf, NetworkError> {
    bin_dirs
        .iter()
        .map(|dir| dir.join(plugin))
        .find(|path| path.is_file())
        .ok_or_else(|| NetworkError::PluginNotFound {
            plugin: plugin.to_string(),
            dirs: bin_dirs.to_vec(),
        })
}

/// Runs `plugin` with `netconf` on stdin and returns its stdout.
pub(crate) async fn run(
    invocation: &Invocation<'_>,
    plugin: &str,
    netconf: &Value,
) -> Result<Vec<u8>, NetworkError> {
    let failed = |message: String| NetworkError::Plugin {
        plugin: plugin.to_string(),
        command: invocation.command,
        sandbox_id: invocation.sandbox_id.to_string(),
        message,
    };
    let binary = find_plugin(plugin, invocation.bin_dirs)?;
    let cni_path = std::env::join_paths(invocation.bin_dirs)
        .map_err(|e| failed(format!("plugin dirs cannot form CNI_PATH: {e}")))?;
    let stdin_bytes = serde_json::to_vec(netconf).expect("a JSON value always serializes");
    tracing::debug!(plugin, command = invocation.command, netconf = %netconf, "running CNI plugin");
    let mut child = Command::new(&binary)
        .env("CNI_COMMAND", invocation.command)
        .env("CNI_CONTAINERID", invocation.sandbox_id)
        .env("CNI_NETNS", invocation.netns)
        .env("CNI_IFNAME", invocation.ifname)
        .env("CNI_ARGS", invocation.cni_args)
        .env("CNI_PATH", &cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout also kills what it started (iptables, IPAM).
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("cannot start {}: {e}", binary.display())))?;
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let feed = async move {
        // A plugin may exit without reading; its own error says more than EPIPE would.
        let _ = stdin.write_all(&stdin_bytes).await;
    };
    let work = async {
        let (_, output) = tokio::join!(feed, child.wait_with_output());
        output
    };
    tokio::pin!(work);
    let output = tokio::select! {
        output = &mut work => output,
        () = tokio::time::sleep(invocation.timeout) => {
            // The leader is not reaped yet (its wait is still pending), so the group id is ours.
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            return Err(NetworkError::PluginTimeout {
                plugin: plugin.to_string(),
                command: invocation.command,
                sandbox_id: invocation.sandbox_id.to_string(),
                timeout: invocation.timeout,
            });
        }
    }
    .map_err(|e| failed(format!("waiting for {}: {e}", binary.display())))?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    Err(failed(error_message(
        &output.stdout,
        &output.stderr,
        &output.status,
    )))
}

/// libcni's reading of a failed plugin: its JSON error on stdout ("msg; details"), else its
/// stderr, else the exit status.
fn error_message(stdout: &[u8], stderr: &[u8], status: &std::process::ExitStatus) -> String {
    if let Ok(error) = serde_json::from_slice::<Value>(stdout) {
        let msg = error.get("msg").and_then(Value::as_str).unwrap_or_default();
        let details = error
            .get("details")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !msg.is_empty() {
            return match details {
                "" => msg.to_string(),
                details => format!("{msg}; {details}"),
            };
        }
    }
    let stderr = String::from_utf8_lossy(stderr);
    match stderr.trim() {
        "" => format!("netplugin failed with no error message: {status}"),
        text => format!("netplugin failed: {text:?}"),
    }
}

/// True for the "already gone" errors containerd tolerates on DEL: "not found" always, "no such
/// file or directory" when the namespace is gone.
pub(crate) fn is_gone_error(error: &NetworkError, netns_gone: bool) -> bool {
    let NetworkError::Plugin { message, .. } = error else {
        return false;
    };
    message.contains("not found") || (netns_gone && message.contains("no such file or directory"))
}

/// Whether `path` is a live, pinned namespace (an nsfs file), so DEL can enter it.
pub(crate) fn is_namespace(path: &Path) -> bool {
    !path.as_os_str().is_empty()
        && nix::sys::statfs::statfs(path)
            .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}
