//! crictl against the built-in runtime's streaming server, over both of crictl's transports
//! (SPDY, its default, and WebSocket): exec with a large stdin copied back byte for byte, exec
//! with a TTY of a given size, attach to a container's stdin and stdout, and a 10 MiB
//! port-forward echoed back byte for byte.

mod support;

use nix::sys::signal::Signal;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Stdio};
use std::time::Duration;
use support::builtin::Node;
use support::{BUSYBOX, free_port};

const TRANSPORTS: [&str; 2] = ["spdy", "websocket"];
const EXEC_STDIN: usize = 4 << 20;
const FORWARDED: usize = 10 << 20;
const ECHO_PORT: u16 = 8080;

/// Bytes no shell or terminal would pass through unchanged by accident (xorshift).
fn noise(len: usize, mut seed: u32) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u8
        })
        .collect()
}

fn write_json(path: &Path, value: serde_json::Value) -> String {
    std::fs::write(path, value.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

/// Creates and starts a container of `pod` running `script`, with stdin open once when asked.
fn start_container(
    node: &Node,
    socket: &Path,
    pod: &str,
    pod_config: &str,
    name: &str,
    script: &str,
    stdin_once: bool,
) -> String {
    let config = write_json(
        &node.dir.join(format!("{name}.json")),
        serde_json::json!({
            "metadata": {"name": name},
            "image": {"image": BUSYBOX},
            "command": ["/bin/sh", "-c", script],
            "log_path": format!("{name}/0.log"),
            "stdin": stdin_once,
            "stdin_once": stdin_once,
            "linux": {},
        }),
    );
    let id = node
        .crictl_ok(socket, &["create", pod, &config, pod_config])
        .trim()
        .to_string();
    node.crictl_ok(socket, &["start", &id]);
    id
}

/// Runs crictl with `stdin` fed from another thread; returns stdout, or panics with stderr.
fn crictl_with_stdin(node: &Node, socket: &Path, args: &[&str], stdin: Vec<u8>) -> Vec<u8> {
    let mut child = node
        .crictl_command(socket, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn crictl");
    let mut pipe = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || pipe.write_all(&stdin));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().expect("crictl took all of stdin");
    assert!(
        out.status.success(),
        "crictl {args:?} failed: {}\nlog:\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log()
    );
    out.stdout
}

/// `crictl port-forward` to the pod's echo server on a free local port, until dropped.
struct Forward {
    child: Child,
    port: u16,
    /// crictl's stdout, open while it runs: it writes a line per connection.
    _said: BufReader<ChildStdout>,
}

impl Forward {
    fn start(node: &Node, socket: &Path, pod: &str, transport: &str) -> Forward {
        let port = free_port();
        let mapping = format!("{port}:{ECHO_PORT}");
        let mut child = node
            .crictl_command(socket, &["port-forward", "-r", transport, pod, &mapping])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn crictl port-forward");
        // crictl says "Forwarding from 127.0.0.1:PORT -> 8080" once it listens.
        let mut said = BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        said.read_line(&mut ready).unwrap();
        assert!(
            ready.contains(&format!("127.0.0.1:{port}")),
            "crictl port-forward over {transport} did not start: {ready:?}"
        );
        Forward {
            child,
            port,
            _said: said,
        }
    }

    /// Sends `data` through the forward while reading the echo; returns what came back.
    fn echo(&self, data: &[u8]) -> Vec<u8> {
        let stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut reader = stream.try_clone().unwrap();
        let receiver = std::thread::spawn(move || {
            let mut back = Vec::new();
            reader.read_to_end(&mut back).map(|_| back)
        });
        let mut writer = &stream;
        writer.write_all(data).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        receiver
            .join()
            .unwrap()
            .expect("the echo through the forward")
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn crictl_streams_exec_attach_and_port_forward_over_spdy_and_websocket() {
    let mut node = Node::new("crictl-stream", 1);
    let socket = node.dir.join("cri.sock");
    node.start_runtime(&socket);
    let pod_config = write_json(
        &node.dir.join("pod.json"),
        serde_json::json!({
            "metadata": {"name": "streams", "namespace": "default", "uid": "crictl-stream-1", "attempt": 0},
            "log_directory": node.dir.join("pod-logs"),
            "linux": {},
        }),
    );
    let pod = node
        .crictl_ok(&socket, &["runp", &pod_config])
        .trim()
        .to_string();
    let server = start_container(
        &node,
        &socket,
        &pod,
        &pod_config,
        "echo",
        &format!("exec nc -ll -p {ECHO_PORT} -e /bin/cat"),
        false,
    );

    for (round, transport) in TRANSPORTS.into_iter().enumerate() {
        // Exec: a large stdin comes back on stdout unchanged, and the exit code reaches crictl.
        let input = noise(EXEC_STDIN, 7 + round as u32);
        let out = crictl_with_stdin(
            &node,
            &socket,
            &["exec", "-i", "-r", transport, &server, "cat"],
            input.clone(),
        );
        assert!(
            out == input,
            "exec over {transport}: stdin came back changed"
        );
        let failed = node
            .crictl_command(
                &socket,
                &["exec", "-r", transport, &server, "sh", "-c", "exit 3"],
            )
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&failed.stderr);
        assert!(
            !failed.status.success() && stderr.contains("command terminated with exit code 3"),
            "exec over {transport}: {stderr}"
        );

        // TTY: `script` gives crictl a terminal of a known size, which the container sees.
        let crictl = node.crictl_command(
            &socket,
            &[
                "exec",
                "-it",
                "-r",
                transport,
                &server,
                "sh",
                "-c",
                "tty; stty size",
            ],
        );
        let tty_exec = std::iter::once(crictl.get_program())
            .chain(crictl.get_args())
            .map(|word| format!("'{}'", word.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        let out = std::process::Command::new("script")
            .args([
                "-q",
                "-e",
                "-c",
                &format!("stty cols 91 rows 27; {tty_exec}"),
                "/dev/null",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run script(1) from util-linux");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "tty exec over {transport}: {text}");
        assert!(
            text.contains("/dev/pts/"),
            "tty exec over {transport}: {text}"
        );
        assert!(text.contains("27 91"), "tty exec over {transport}: {text}");

        // Attach: stdin reaches the container's shell, its answers come back, and closing stdin
        // ends the container (stdin_once) and with it the session.
        let reader = start_container(
            &node,
            &socket,
            &pod,
            &pod_config,
            &format!("reader-{transport}"),
            "while read line; do echo \"got:$line\"; done; echo stdin-closed",
            true,
        );
        let out = crictl_with_stdin(
            &node,
            &socket,
            &["attach", "-i", "-r", transport, &reader],
            b"one\ntwo\n".to_vec(),
        );
        let out = String::from_utf8_lossy(&out);
        assert!(
            out.contains("got:one\ngot:two\n"),
            "attach over {transport}: {out:?}"
        );

        // Port-forward: 10 MiB to the pod's echo server and back, the same bytes.
        let forward = Forward::start(&node, &socket, &pod, transport);
        let sent = noise(FORWARDED, 1000 + round as u32);
        let back = forward.echo(&sent);
        assert_eq!(back.len(), sent.len(), "port-forward over {transport}");
        assert!(back == sent, "port-forward over {transport}: bytes changed");
    }

    node.crictl_ok(&socket, &["stopp", &pod]);
    node.crictl_ok(&socket, &["rmp", &pod]);
    node.stop(Signal::SIGTERM);
}
