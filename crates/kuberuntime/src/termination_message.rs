//! The message of a terminated container (upstream kuberuntime convertToAPIContainerStatuses):
//! the file at terminationMessagePath, and with FallbackToLogsOnError the tail of its log when the
//! file is empty and the container failed.

use kubelet_cri::api;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Upstream limits: 4 KiB from the file; 80 lines and at most 2 KiB from the log.
pub const MAX_MESSAGE_BYTES: u64 = 4 * 1024;
pub const MAX_LOG_LINES: usize = 80;
pub const MAX_LOG_BYTES: usize = 2 * 1024;

/// The message to report for an exited container, or None.
pub fn read(
    status: &api::ContainerStatus,
    path_in_container: &str,
    policy: &str,
) -> Option<String> {
    let from_file = status
        .mounts
        .iter()
        .find(|m| m.container_path == path_in_container && !path_in_container.is_empty())
        .and_then(|m| read_head(Path::new(&m.host_path), MAX_MESSAGE_BYTES))
        .filter(|m| !m.is_empty());
    if from_file.is_some() {
        return from_file;
    }
    if policy == "FallbackToLogsOnError" && status.exit_code != 0 && !status.log_path.is_empty() {
        return log_tail(Path::new(&status.log_path)).filter(|m| !m.is_empty());
    }
    None
}

fn read_head(path: &Path, max: u64) -> Option<String> {
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(max)
        .read_to_end(&mut buf)
        .ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// The last lines of a CRI-format log, their payloads joined, bounded as upstream.
fn log_tail(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    // Each CRI line carries a ~40 byte prefix; read enough to find the last lines' payloads.
    let window = (MAX_LOG_BYTES as u64 * 4).min(len);
    f.seek(SeekFrom::Start(len - window)).ok()?;
    let mut raw = Vec::new();
    f.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let mut lines: Vec<&str> = text.lines().collect();
    if window < len && !lines.is_empty() {
        lines.remove(0); // the first line of the window may be cut
    }
    let mut message = String::new();
    for line in lines.iter().rev().take(MAX_LOG_LINES).rev() {
        // "<time> <stream> <P|F> <payload>": partial lines continue without a newline.
        let mut parts = line.splitn(4, ' ');
        let (_, _, tag, payload) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next().unwrap_or(""),
        );
        message.push_str(payload);
        if tag != Some("P") {
            message.push('\n');
        }
    }
    if message.len() > MAX_LOG_BYTES {
        let mut cut = message.len() - MAX_LOG_BYTES;
        while !message.is_char_boundary(cut) {
            cut += 1;
        }
        message = message[cut..].to_string();
    }
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(dir: &Path, exit_code: i32) -> api::ContainerStatus {
        api::ContainerStatus {
            exit_code,
            log_path: dir.join("0.log").display().to_string(),
            mounts: vec![api::Mount {
                container_path: "/dev/termination-log".into(),
                host_path: dir.join("msg").display().to_string(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn file_first_then_logs_on_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0.log"), "2026-01-01T00:00:00Z stdout F first\n2026-01-01T00:00:01Z stderr P par\n2026-01-01T00:00:02Z stderr F tial\n").unwrap();
        std::fs::write(dir.path().join("msg"), "").unwrap();
        let s = status(dir.path(), 1);
        assert_eq!(
            read(&s, "/dev/termination-log", "FallbackToLogsOnError").as_deref(),
            Some("first\npartial\n")
        );
        assert_eq!(read(&s, "/dev/termination-log", "File"), None);
        assert_eq!(
            read(
                &status(dir.path(), 0),
                "/dev/termination-log",
                "FallbackToLogsOnError"
            ),
            None,
            "only on error"
        );

        std::fs::write(dir.path().join("msg"), "x".repeat(5000)).unwrap();
        let m = read(&s, "/dev/termination-log", "FallbackToLogsOnError").unwrap();
        assert_eq!(m.len(), 4096, "the file is read up to 4 KiB");
    }

    #[test]
    fn log_tail_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let line = |i: usize| {
            format!(
                "2026-01-01T00:00:00Z stdout F line-{i:04}-{}\n",
                "y".repeat(40)
            )
        };
        std::fs::write(
            dir.path().join("0.log"),
            (0..500).map(line).collect::<String>(),
        )
        .unwrap();
        let m = read(&status(dir.path(), 2), "/nowhere", "FallbackToLogsOnError").unwrap();
        assert!(m.len() <= MAX_LOG_BYTES);
        assert!(m.ends_with(&format!("line-0499-{}\n", "y".repeat(40))));
        assert!(m.lines().count() <= MAX_LOG_LINES);
    }
}
