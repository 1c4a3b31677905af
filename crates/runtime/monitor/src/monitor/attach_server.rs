//! Attach clients on attach.sock (protocol in [`crate::attach`]), all non-blocking.

use crate::attach::{ClientFrame, MAX_BACKLOG, MAX_PAYLOAD, ServerFrame};
use crate::cri_log::Stream;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

pub(super) struct AttachServer {
    listener: UnixListener,
    clients: Vec<Client>,
    frame: Vec<u8>,
}

pub(super) struct Client {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// The client sent stdin, so its leaving ends a stdin_once container's stdin.
    pub wrote_stdin: bool,
    pub gone: bool,
}

impl AttachServer {
    pub fn new(listener: UnixListener) -> Self {
        AttachServer {
            listener,
            clients: Vec::new(),
            frame: Vec::new(),
        }
    }

    pub fn listener(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    pub fn clients(&self) -> impl Iterator<Item = (usize, &Client)> {
        self.clients.iter().enumerate()
    }

    pub fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        tracing::debug!("attach client connected");
                        self.clients.push(Client {
                            stream,
                            input: Vec::new(),
                            output: Vec::new(),
                            wrote_stdin: false,
                            gone: false,
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Queues container output for every client, in frames of at most MAX_PAYLOAD bytes.
    pub fn broadcast(&mut self, stream: Stream, data: &[u8]) {
        if self.clients.is_empty() {
            return;
        }
        self.frame.clear();
        for chunk in data.chunks(MAX_PAYLOAD) {
            match stream {
                Stream::Stdout => ServerFrame::Stdout(chunk.to_vec()),
                Stream::Stderr => ServerFrame::Stderr(chunk.to_vec()),
            }
            .encode(&mut self.frame);
        }
        for client in &mut self.clients {
            client.output.extend_from_slice(&self.frame);
            if client.output.len() > MAX_BACKLOG {
                tracing::warn!("attach client too slow, disconnected");
                client.gone = true;
            }
            client.flush();
        }
    }

    /// Reads what client `index` sent; returns its complete frames.
    pub fn read(&mut self, index: usize) -> Vec<ClientFrame> {
        let client = &mut self.clients[index];
        let mut buf = [0u8; 16 * 1024];
        loop {
            match client.stream.read(&mut buf) {
                Ok(0) => {
                    client.gone = true;
                    break;
                }
                Ok(n) => client.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    client.gone = true;
                    break;
                }
            }
            if client.input.len() > MAX_PAYLOAD * 2 {
                break;
            }
        }
        let mut frames = Vec::new();
        let mut used = 0;
        loop {
            match ClientFrame::decode(&client.input[used..]) {
                Ok(Some((frame, n))) => {
                    used += n;
                    client.wrote_stdin |= matches!(frame, ClientFrame::Stdin(_));
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, "attach client sent a bad frame, disconnected");
                    client.gone = true;
                    break;
                }
            }
        }
        client.input.drain(..used);
        frames
    }

    pub fn write(&mut self, index: usize) {
        self.clients[index].flush();
    }

    /// Removes the clients that left; returns whether one of them had written stdin.
    pub fn reap(&mut self) -> bool {
        let mut stdin_writer_left = false;
        self.clients.retain(|client| {
            stdin_writer_left |= client.gone && client.wrote_stdin;
            !client.gone
        });
        stdin_writer_left
    }

    /// The container exited: tell every client, give each a moment to take its output, close.
    pub fn finish(&mut self, exit_code: i32) {
        let mut frame = Vec::new();
        ServerFrame::Exit(exit_code).encode(&mut frame);
        for client in &mut self.clients {
            client.output.extend_from_slice(&frame);
            let stream = &mut client.stream;
            let sent = stream
                .set_nonblocking(false)
                .and_then(|()| stream.set_write_timeout(Some(Duration::from_millis(500))))
                .and_then(|()| stream.write_all(&client.output));
            if let Err(error) = sent {
                tracing::debug!(%error, "attach client missed the end of the output");
            }
        }
        self.clients.clear();
    }
}

impl Client {
    pub fn stream(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    pub fn wants_write(&self) -> bool {
        !self.output.is_empty()
    }

    fn flush(&mut self) {
        while !self.output.is_empty() && !self.gone {
            match self.stream.write(&self.output) {
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => self.gone = true,
            }
        }
    }
}
