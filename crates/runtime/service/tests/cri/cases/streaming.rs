//! The streaming backend against real containers with runc and crun: exec with pipes and with a
//! terminal, attach, port-forward, each called directly with in-memory streams.

use super::{
    assert_clean, container, create, pod, remove_pod, run_pod, start, stop_pod, wait_exited,
};
use crate::fixture::Fixture;
use runtime_streaming::{Backend, BackendError, ExecIo, TermSize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;

const PIPE: usize = 64 * 1024;

pub fn sessions_runc(fx: &Fixture) {
    sessions(fx, "runc");
}

pub fn sessions_crun(fx: &Fixture) {
    sessions(fx, "crun");
}

/// What a session wrote and how it ended.
struct Ended {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    result: Result<(), BackendError>,
}

impl Ended {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// The client's side of a session: what it sends, whether it wants a terminal, the sizes it
/// sends after `size_delay` (right away by default).
#[derive(Default)]
struct Client {
    stdin: Option<Vec<u8>>,
    tty: bool,
    sizes: Vec<TermSize>,
    size_delay: Duration,
}

fn reader(mut from: DuplexStream) -> JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = from.read_to_end(&mut out).await;
        out
    })
}

impl Client {
    fn stdin(data: &[u8]) -> Client {
        Client {
            stdin: Some(data.to_vec()),
            ..Client::default()
        }
    }

    /// Streams for the backend and the tasks that play the client; the session's future runs
    /// with the streams.
    async fn run<F>(self, session: impl FnOnce(ExecIo) -> F) -> Ended
    where
        F: std::future::Future<Output = Result<(), BackendError>>,
    {
        let (stdin, writer) = match self.stdin {
            Some(data) => {
                let (mut client, backend) = tokio::io::duplex(PIPE);
                let writer = tokio::spawn(async move {
                    let _ = client.write_all(&data).await;
                    let _ = client.shutdown().await;
                });
                let stdin: Box<dyn tokio::io::AsyncRead + Send + Unpin> = Box::new(backend);
                (Some(stdin), Some(writer))
            }
            None => (None, None),
        };
        let (out_backend, out_client) = tokio::io::duplex(PIPE);
        let (err_backend, err_client) = tokio::io::duplex(PIPE);
        let (resize_tx, resize_rx) = tokio::sync::mpsc::channel(4);
        let (sizes, delay) = (self.sizes, self.size_delay);
        let sizer = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            for size in sizes {
                let _ = resize_tx.send(size).await;
            }
        });
        let io = ExecIo {
            stdin,
            stdout: Some(Box::new(out_backend)),
            stderr: (!self.tty).then(|| Box::new(err_backend) as _),
            tty: self.tty,
            resize: self.tty.then_some(resize_rx),
        };
        let (stdout, stderr) = (reader(out_client), reader(err_client));
        let result = tokio::time::timeout(Duration::from_secs(60), session(io))
            .await
            .expect("the session ends");
        sizer.abort();
        if let Some(writer) = writer {
            writer.abort();
        }
        let collect = |task: JoinHandle<Vec<u8>>| async {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the backend closes its output")
                .unwrap()
        };
        Ended {
            stdout: collect(stdout).await,
            stderr: collect(stderr).await,
            result,
        }
    }
}

async fn exec(backend: &Arc<dyn Backend>, id: &str, cmd: &[&str], client: Client) -> Ended {
    let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    client.run(|io| backend.exec(id, cmd, io)).await
}

/// Deterministic bytes that no compression or echo of zeros would fake.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn sessions(fx: &Fixture, handler: &str) {
    let name = format!("st-{handler}");
    let rt = fx.runtime(&name);
    let backend = rt.streaming_backend();
    fx.tokio.block_on(async {
        let config = pod(fx, &name);
        let pod_id = run_pod(&rt, config.clone(), handler).await;
        let app = create(&rt, &pod_id, &config, container("app", &["sleep", "3600"])).await;
        start(&rt, &app).await;

        exec_cases(&backend, &app).await;
        tty_cases(&backend, &app).await;
        attach_cases(&rt, &backend, &pod_id, &config).await;
        port_forward_cases(&rt, &backend, &pod_id, &config).await;
        missing_objects(&rt, &backend, &pod_id, &config).await;
        host_network(fx, &rt, &backend, handler).await;

        stop_pod(&rt, &pod_id).await;
        remove_pod(&rt, &pod_id).await;
    });
    assert_clean(fx, &name);
    let prefix = format!("kubelet-rs-console-{}-", std::process::id());
    let sockets: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(sockets.is_empty(), "console sockets left: {sockets:?}");
}

async fn exec_cases(backend: &Arc<dyn Backend>, id: &str) {
    let echo = exec(backend, id, &["echo", "hello"], Client::default()).await;
    assert!(echo.result.is_ok(), "{:?}", echo.result);
    assert_eq!(echo.stdout(), "hello\n");
    assert!(echo.stderr.is_empty());

    let err = exec(
        backend,
        id,
        &["sh", "-c", "echo oops >&2"],
        Client::default(),
    )
    .await;
    assert!(err.result.is_ok(), "{:?}", err.result);
    assert_eq!(String::from_utf8_lossy(&err.stderr), "oops\n");
    assert!(err.stdout.is_empty());

    let code = exec(backend, id, &["sh", "-c", "exit 3"], Client::default()).await;
    assert!(
        matches!(code.result, Err(BackendError::NonZeroExit(3))),
        "{:?}",
        code.result
    );

    // Several MiB through stdin; its EOF ends the command.
    let data = noise(6 << 20);
    let sum = exec(
        backend,
        id,
        &["sh", "-c", "tee /tmp/in | sha256sum; wc -c < /tmp/in"],
        Client::stdin(&data),
    )
    .await;
    assert!(sum.result.is_ok(), "{:?}", sum.result);
    let expected = format!("{:x}  -\n{}\n", Sha256::digest(&data), data.len());
    assert_eq!(sum.stdout(), expected);

    let missing = exec(backend, id, &["/no/such/binary"], Client::default()).await;
    match &missing.result {
        // runc fails before the process runs; crun's child fails its execve.
        Err(BackendError::Failed(message)) => {
            assert!(message.contains("/no/such/binary"), "{message}")
        }
        Err(BackendError::NonZeroExit(code)) => assert!(*code >= 126, "{code}"),
        other => panic!("exec of a missing binary: {other:?}"),
    }
}

async fn tty_cases(backend: &Arc<dyn Backend>, id: &str) {
    let tty = Client {
        tty: true,
        ..Client::default()
    };
    let shown = exec(backend, id, &["tty"], tty).await;
    assert!(shown.result.is_ok(), "{:?}", shown.result);
    assert!(
        shown.stdout().starts_with("/dev/pts/"),
        "{:?}",
        shown.stdout()
    );

    // The first size is the process's from its start: no wait before asking for it, even
    // when the client sends it a little after the session began (a loaded client or node).
    for delay in [Duration::ZERO, Duration::from_millis(150)] {
        let sized = Client {
            tty: true,
            sizes: vec![TermSize {
                width: 123,
                height: 45,
            }],
            size_delay: delay,
            ..Client::default()
        };
        let size = exec(backend, id, &["stty", "size"], sized).await;
        assert!(size.result.is_ok(), "{delay:?}: {:?}", size.result);
        assert_eq!(size.stdout().trim(), "45 123", "sent after {delay:?}");
    }

    // Input through the terminal (echoed by it), and an exit code through the reaper.
    let typed = Client {
        stdin: Some(b"hi\n".to_vec()),
        tty: true,
        ..Client::default()
    };
    let read = exec(
        backend,
        id,
        &["sh", "-c", "read line; echo got:$line; exit 5"],
        typed,
    )
    .await;
    assert!(
        matches!(read.result, Err(BackendError::NonZeroExit(5))),
        "{:?}",
        read.result
    );
    assert!(read.stdout().contains("got:hi"), "{:?}", read.stdout());
}

async fn attach_cases(
    rt: &runtime_service::Runtime,
    backend: &Arc<dyn Backend>,
    pod_id: &str,
    config: &k8s_cri::v1::PodSandboxConfig,
) {
    let with_stdin = |name: &str, cmd: &[&str]| {
        let mut c = container(name, cmd);
        c.stdin = true;
        c.stdin_once = true;
        c
    };
    let cat = create(rt, pod_id, config, with_stdin("cat", &["cat"])).await;
    start(rt, &cat).await;
    let data = noise(1 << 20);
    let echoed = Client::stdin(&data)
        .run(|io| backend.attach(&cat, io))
        .await;
    assert!(echoed.result.is_ok(), "{:?}", echoed.result);
    assert!(
        echoed.stdout == data,
        "attach echoed {} bytes of {}",
        echoed.stdout.len(),
        data.len()
    );

    let code = create(
        rt,
        pod_id,
        config,
        with_stdin("code", &["sh", "-c", "read x; echo $x >&2; exit 7"]),
    )
    .await;
    start(rt, &code).await;
    let ended = Client::stdin(b"bye\n")
        .run(|io| backend.attach(&code, io))
        .await;
    assert!(
        matches!(ended.result, Err(BackendError::NonZeroExit(7))),
        "{:?}",
        ended.result
    );
    assert_eq!(String::from_utf8_lossy(&ended.stderr), "bye\n");
    let status = wait_exited(rt, &code).await;
    assert_eq!(status.exit_code, 7);

    let exited = Client::default().run(|io| backend.attach(&code, io)).await;
    match exited.result {
        Err(BackendError::Failed(message)) => assert!(message.contains("not running"), "{message}"),
        other => panic!("attach to an exited container: {other:?}"),
    }
}

async fn port_forward_cases(
    rt: &runtime_service::Runtime,
    backend: &Arc<dyn Backend>,
    pod_id: &str,
    config: &k8s_cri::v1::PodSandboxConfig,
) {
    // An echo server for one connection: cat on the accepted socket.
    let srv = create(
        rt,
        pod_id,
        config,
        container("srv", &["nc", "-l", "-p", "8080", "-e", "cat"]),
    )
    .await;
    start(rt, &srv).await;
    let data = noise(10 << 20);
    let mut attempt = 0;
    let echoed = loop {
        let (client, stream) = tokio::io::duplex(PIPE);
        let forward = {
            let backend = backend.clone();
            let pod_id = pod_id.to_string();
            tokio::spawn(async move { backend.port_forward(&pod_id, 8080, Box::new(stream)).await })
        };
        let (mut from, mut to) = tokio::io::split(client);
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            let _ = to.write_all(&sent).await;
            // Half-close: the server's cat sees EOF, exits, and the connection ends.
            let _ = to.shutdown().await;
        });
        let mut got = Vec::new();
        let _ = from.read_to_end(&mut got).await;
        writer.await.unwrap();
        let result = forward.await.unwrap();
        // nc may not be listening yet right after the start.
        if matches!(&result, Err(BackendError::Failed(m)) if m.contains("refused")) && attempt < 50
        {
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert!(result.is_ok(), "{result:?}");
        break got;
    };
    assert!(
        echoed == data,
        "port-forward echoed {} bytes of {}",
        echoed.len(),
        data.len()
    );

    let (_client, stream) = tokio::io::duplex(PIPE);
    match backend.port_forward(pod_id, 9, Box::new(stream)).await {
        Err(BackendError::Failed(message)) => {
            assert!(
                message.contains("port 9") && message.contains(pod_id),
                "{message}"
            );
            assert!(message.contains("refused"), "{message}");
        }
        other => panic!("forward to a closed port: {other:?}"),
    }
}

async fn missing_objects(
    rt: &runtime_service::Runtime,
    backend: &Arc<dyn Backend>,
    pod_id: &str,
    config: &k8s_cri::v1::PodSandboxConfig,
) {
    let gone = exec(backend, "nosuchcontainer", &["true"], Client::default()).await;
    assert!(
        matches!(gone.result, Err(BackendError::NotFound(_))),
        "{:?}",
        gone.result
    );
    let (_client, stream) = tokio::io::duplex(PIPE);
    let result = backend
        .port_forward("nosuchsandbox", 80, Box::new(stream))
        .await;
    assert!(
        matches!(result, Err(BackendError::NotFound(_))),
        "{result:?}"
    );

    let done = create(rt, pod_id, config, container("done", &["true"])).await;
    start(rt, &done).await;
    wait_exited(rt, &done).await;
    match exec(backend, &done, &["true"], Client::default())
        .await
        .result
    {
        Err(BackendError::Failed(message)) => {
            assert!(
                message.contains("not running") && message.contains(&done),
                "{message}"
            )
        }
        other => panic!("exec in an exited container: {other:?}"),
    }
}

/// A host-network pod's port is the host's: a listener of this test process answers.
async fn host_network(
    fx: &Fixture,
    rt: &runtime_service::Runtime,
    backend: &Arc<dyn Backend>,
    handler: &str,
) {
    let mut config = pod(fx, &format!("st-host-{handler}"));
    let options = config
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .and_then(|s| s.namespace_options.as_mut())
        .unwrap();
    options.network = k8s_cri::v1::NamespaceMode::Node as i32;
    let pod_id = run_pod(rt, config, handler).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut asked = Vec::new();
        conn.read_to_end(&mut asked).await.unwrap();
        conn.write_all(&[b"host:", &asked[..]].concat())
            .await
            .unwrap();
    });
    let (client, stream) = tokio::io::duplex(PIPE);
    let forward = {
        let backend = backend.clone();
        let pod_id = pod_id.clone();
        tokio::spawn(async move { backend.port_forward(&pod_id, port, Box::new(stream)).await })
    };
    let (mut from, mut to) = tokio::io::split(client);
    to.write_all(b"ping").await.unwrap();
    to.shutdown().await.unwrap();
    let mut got = Vec::new();
    from.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"host:ping");
    forward
        .await
        .unwrap()
        .expect("port-forward in the host's network");
    server.await.unwrap();
    stop_pod(rt, &pod_id).await;
    remove_pod(rt, &pod_id).await;
}
