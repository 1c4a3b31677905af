//! Reads a CRI log file into the response: tail, since, timestamps and limit applied, and with
//! follow, new entries streamed as they are written, across rotations, until the container
//! stops or the client goes away.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kubelet_cri::api::ContainerState;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc::Sender;

use super::cri_format::{self, Entry};
use super::options::LogOptions;

/// How often a followed file is checked for new data and rotation. Polling keeps one code path
/// for appends and renames; the delay is well under what a log reader notices.
const POLL: Duration = Duration::from_millis(100);
/// How many idle polls pass between checks that the container still runs.
const POLLS_PER_STATUS: u32 = 10;

type Chunks = Sender<io::Result<Bytes>>;

/// Writes entries to the response, applying since, timestamps and the byte limit.
struct Output {
    options: LogOptions,
    sender: Chunks,
    at_line_start: bool,
}

impl Output {
    /// False once nothing more may be written: the limit is reached or the client left.
    async fn write(&mut self, entry: Entry) -> bool {
        if self.options.since.is_some_and(|since| entry.time < since) {
            return true;
        }
        let mut chunk = Vec::with_capacity(entry.message.len() + 32);
        if self.options.timestamps && self.at_line_start {
            chunk.extend_from_slice(cri_format::format_time(entry.time).as_bytes());
            chunk.push(b' ');
        }
        chunk.extend_from_slice(&entry.message);
        self.at_line_start = !entry.partial;
        let mut more = true;
        if let Some(remaining) = &mut self.options.limit_bytes {
            let allowed = usize::try_from(*remaining).unwrap_or(usize::MAX);
            if chunk.len() >= allowed {
                chunk.truncate(allowed);
                more = false;
            }
            *remaining -= chunk.len() as u64;
        }
        self.sender.send(Ok(Bytes::from(chunk))).await.is_ok() && more
    }

    /// Writes every complete line of `buffer`, leaving an unfinished last line in it.
    async fn write_lines(&mut self, buffer: &mut Vec<u8>) -> bool {
        let Some(end) = buffer.iter().rposition(|byte| *byte == b'\n') else {
            return true;
        };
        let complete: Vec<u8> = buffer.drain(..=end).collect();
        for line in complete[..complete.len() - 1].split(|byte| *byte == b'\n') {
            match cri_format::parse(line) {
                Some(entry) => {
                    if !self.write(entry).await {
                        return false;
                    }
                }
                None => {
                    tracing::debug!(line = %String::from_utf8_lossy(line), "skipping a malformed CRI log line")
                }
            }
        }
        true
    }
}

/// The offset of the last `lines` lines of `content` (complete lines only).
fn tail_start(content: &[u8], lines: u64) -> usize {
    let complete = content
        .iter()
        .rposition(|byte| *byte == b'\n')
        .map_or(0, |end| end + 1);
    if lines == 0 {
        return complete;
    }
    let mut seen = 0;
    for (index, byte) in content[..complete].iter().enumerate().rev().skip(1) {
        if *byte == b'\n' {
            seen += 1;
            if seen == lines {
                return index + 1;
            }
        }
    }
    0
}

pub(super) async fn stream(
    runtime: Arc<dyn kubelet_cri::Runtime>,
    container_id: String,
    path: PathBuf,
    options: LogOptions,
    sender: Chunks,
) {
    let (follow, tail) = (options.follow, options.tail_lines);
    let mut output = Output {
        options,
        sender,
        at_line_start: true,
    };
    let open = |path: PathBuf| async move {
        let file = tokio::fs::File::open(&path).await?;
        let inode = file.metadata().await?.ino();
        io::Result::Ok((file, inode))
    };
    let (mut file, mut inode) = match open(path.clone()).await {
        Ok(opened) => opened,
        Err(error) => {
            let message = format!("failed to open log file {:?}: {error}", path.display());
            let _ = output.sender.send(Err(io::Error::other(message))).await;
            return;
        }
    };
    let mut buffer = Vec::new();
    if let Err(error) = file.read_to_end(&mut buffer).await {
        let _ = output.sender.send(Err(error)).await;
        return;
    }
    if let Some(lines) = tail {
        buffer.drain(..tail_start(&buffer, lines));
    }
    if !output.write_lines(&mut buffer).await || !follow {
        return;
    }
    let mut idle_polls = 0;
    loop {
        let read = match file.read_to_end(&mut buffer).await {
            Ok(read) => read,
            Err(error) => {
                let _ = output.sender.send(Err(error)).await;
                return;
            }
        };
        if !output.write_lines(&mut buffer).await {
            return;
        }
        if read > 0 {
            idle_polls = 0;
            continue;
        }
        // At the end of the file: a new file at the path means the old one was rotated away.
        let rotated = tokio::fs::metadata(&path)
            .await
            .is_ok_and(|metadata| metadata.ino() != inode);
        if rotated && let Ok(opened) = open(path.clone()).await {
            // Writes that reached the old file after our last read, but before the new file
            // appeared, come first.
            if file.read_to_end(&mut buffer).await.is_ok() && !output.write_lines(&mut buffer).await
            {
                return;
            }
            (file, inode) = opened;
            buffer.clear();
            continue;
        }
        if output.sender.is_closed() {
            return;
        }
        idle_polls += 1;
        if idle_polls % POLLS_PER_STATUS == 0 && !running(&*runtime, &container_id).await {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn running(runtime: &dyn kubelet_cri::Runtime, container_id: &str) -> bool {
    runtime
        .container_status(container_id)
        .await
        .is_ok_and(|status| status.state == ContainerState::ContainerRunning as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_counts_complete_lines_from_the_end() {
        let content = b"a\nb\nc\npartial";
        assert_eq!(&content[tail_start(content, 2)..], b"b\nc\npartial");
        assert_eq!(&content[tail_start(content, 0)..], b"partial");
        assert_eq!(tail_start(content, 10), 0);
    }
}
