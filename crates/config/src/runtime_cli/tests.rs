use super::*;
use std::path::Path;
use std::time::Duration;

struct NoSystemd;

impl Host for NoSystemd {
    fn hostname(&self) -> std::io::Result<String> {
        Ok("node".into())
    }

    fn systemd_running(&self) -> bool {
        false
    }
}

fn command(args: &[&str]) -> Result<Command, ConfigError> {
    parse(args.iter().map(|arg| arg.to_string()), &NoSystemd)
}

fn serve(args: &[&str]) -> RuntimeServe {
    match command(args) {
        Ok(Command::Runtime(RuntimeCommand::Serve(serve))) => serve,
        other => panic!("{args:?}: {other:?}"),
    }
}

fn error(args: &[&str]) -> String {
    match command(args) {
        Err(error) => error.to_string(),
        other => panic!("expected an error for {args:?}, got {other:?}"),
    }
}

#[test]
fn serve_defaults() {
    let serve = serve(&[]);
    assert_eq!(serve.socket, Path::new("/run/kubelet-rs/cri.sock"));
    assert_eq!(serve.cgroup_driver, CgroupDriver::Cgroupfs);
    assert_eq!(
        serve.runtime,
        BuiltinRuntimeConfig {
            root: "/var/lib/kubelet-rs".into(),
            state: "/run/kubelet-rs".into(),
            cni_conf_dir: "/etc/cni/net.d".into(),
            cni_bin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            registry_config: None,
            streaming_address: "127.0.0.1:0".parse().unwrap(),
            streaming_idle_timeout: Duration::from_secs(4 * 3600),
        }
    );
}

#[test]
fn serve_flags_in_both_forms() {
    let serve = serve(&[
        "--listen=unix:///tmp/t/cri.sock",
        "--root",
        "/tmp/t/root",
        "--state=/tmp/t/state",
        "--cni-conf-dir=/tmp/t/net.d",
        "--cni-bin-dir=/a,/b",
        "--cni-bin-dir",
        "/c",
        "--registry-config=/tmp/t/certs.d",
        "--cgroup-driver=cgroupfs",
    ]);
    assert_eq!(serve.socket, Path::new("/tmp/t/cri.sock"));
    assert_eq!(serve.runtime.root, Path::new("/tmp/t/root"));
    assert_eq!(serve.runtime.state, Path::new("/tmp/t/state"));
    assert_eq!(serve.runtime.cni_conf_dir, Path::new("/tmp/t/net.d"));
    assert_eq!(
        serve.runtime.cni_bin_dirs,
        vec![PathBuf::from("/a"), "/b".into(), "/c".into()]
    );
    assert_eq!(
        serve.runtime.registry_config.as_deref(),
        Some(Path::new("/tmp/t/certs.d"))
    );
}

#[test]
fn the_socket_defaults_to_the_state_dir_and_takes_a_bare_path() {
    assert_eq!(
        serve(&["--state=/tmp/s"]).socket,
        Path::new("/tmp/s/cri.sock")
    );
    assert_eq!(
        serve(&["--listen=/tmp/x.sock"]).socket,
        Path::new("/tmp/x.sock")
    );
}

#[test]
fn import_takes_archives_and_the_root() {
    match command(&[
        "import",
        "--root=/tmp/r",
        "--state",
        "/tmp/s",
        "a.tar",
        "/b.tar",
    ])
    .unwrap()
    {
        Command::Runtime(RuntimeCommand::Import(import)) => {
            assert_eq!(import.root, Path::new("/tmp/r"));
            assert_eq!(import.state, Path::new("/tmp/s"));
            assert_eq!(
                import.archives,
                vec![PathBuf::from("a.tar"), "/b.tar".into()]
            );
        }
        other => panic!("{other:?}"),
    }
    match command(&["import", "x.tar"]).unwrap() {
        Command::Runtime(RuntimeCommand::Import(import)) => {
            assert_eq!(import.root, Path::new("/var/lib/kubelet-rs"));
            assert_eq!(import.state, Path::new("/run/kubelet-rs"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mistakes_are_named() {
    assert_eq!(error(&["--nope=1"]), "unknown flag: --nope");
    assert_eq!(error(&["-x"]), "unknown flag: -x");
    assert_eq!(error(&["--root"]), "flag needs an argument: --root");
    assert!(error(&["serve"]).starts_with("unexpected argument \"serve\": kubelet runtime"));
    assert!(error(&["--listen=tcp://1.2.3.4:5"]).contains("--listen"));
    assert!(error(&["--cgroup-driver=docker"]).contains("cgroupDriver (--cgroup-driver)"));
    assert!(error(&["--cgroup-driver=systemd"]).contains("systemd is not running"));
    assert!(error(&["import"]).contains("no archive given"));
    // Import has no daemon flags.
    assert_eq!(
        error(&["import", "--listen=/x", "a.tar"]),
        "unknown flag: --listen"
    );
}

#[test]
fn help_documents_every_flag() {
    let Ok(Command::Help(text)) = command(&["--help"]) else {
        panic!("no help");
    };
    for flag in FLAGS {
        assert!(
            text.contains(&format!("--{} ", flag.name)),
            "--{}: {text}",
            flag.name
        );
    }
    assert!(text.contains("(default unix://STATE/cri.sock)"), "{text}");
    assert!(text.contains("  -h, --help"), "{text}");
    let Ok(Command::Help(text)) = command(&["import", "-h"]) else {
        panic!("no import help");
    };
    assert!(
        text.contains("kubelet runtime import [flags] ARCHIVE..."),
        "{text}"
    );
    assert!(text.contains("--root DIR"), "{text}");
    assert!(text.contains("--state DIR"), "{text}");
    assert!(!text.contains("--listen"), "{text}");
}

#[test]
fn logging_flags_as_the_kubelet_takes_them() {
    let default = RuntimeLogging {
        verbosity: 0,
        format: LogFormat::Text,
    };
    assert_eq!(serve(&[]).logging, default);
    for form in [
        &["-v", "4"][..],
        &["-v=4"],
        &["-v4"],
        &["--v=4"],
        &["--v", "4"],
    ] {
        assert_eq!(serve(form).logging.verbosity, 4, "{form:?}");
    }
    assert_eq!(
        serve(&["--logging-format=json"]).logging.format,
        LogFormat::Json
    );
    match command(&["import", "-v=2", "--logging-format", "json", "a.tar"]).unwrap() {
        Command::Runtime(RuntimeCommand::Import(import)) => assert_eq!(
            import.logging,
            RuntimeLogging {
                verbosity: 2,
                format: LogFormat::Json
            }
        ),
        other => panic!("{other:?}"),
    }
    assert!(error(&["-v=300"]).contains("--v"));
    assert!(error(&["--logging-format=xml"]).contains("--logging-format"));
    assert_eq!(error(&["-version"]), "unknown flag: -version");
}
