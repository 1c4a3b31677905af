//! A busybox container through the real OCI runtime: create (as the monitor will run it),
//! start, state, exec_sync, update, kill, delete. Needs root and the Debian runc package.

mod support;

use runtime_oci::{OciError, OciRuntime, OciStatus};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::{
    Cleanup, bundle, busybox, cgroup_parent, container, memory_limit, require_root, runtime,
};

fn wait_status(rt: &OciRuntime, id: &str, want: OciStatus) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = rt.state(id).expect("state").expect("known container");
        if state.status == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} stays {:?}, want {want:?}",
            state.status
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn exec(
    rt: &OciRuntime,
    id: &str,
    spec: &oci_spec::runtime::Spec,
    args: &[&str],
    timeout: Option<Duration>,
) -> Result<runtime_oci::ExecOutput, OciError> {
    let mut process = spec.process().clone().expect("process");
    process.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
    rt.exec_sync(id, &process, timeout)
}

fn lifecycle(name: &str) {
    require_root();
    let dir = tempfile::tempdir().expect("tmp");
    let rt = runtime(name, dir.path());
    let (rootfs, image) = busybox(dir.path());
    let id = format!("oci-it-{name}-{}", std::process::id());
    let parent = cgroup_parent(name);
    let cgroups_path = format!("{parent}/{id}");
    let _cleanup = Cleanup {
        runtime: &rt,
        id: id.clone(),
        cgroup_parent: parent.clone(),
    };
    let (c, sandbox) = container(&["sleep", "3600"]);
    let bundle = bundle(
        dir.path(),
        &id,
        &c,
        &sandbox,
        &image,
        &rootfs,
        &cgroups_path,
    );
    let spec: oci_spec::runtime::Spec =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).expect("config.json"))
            .expect("spec");

    // create, as the monitor runs it: the container's stdio is the command's.
    let pid_file = dir.path().join("pid");
    // Files, not pipes: the container's init inherits both, so a pipe would never see EOF.
    let log = dir.path().join("create.log");
    let err_log = dir.path().join("create.err");
    let status = rt
        .create_command(&id, &bundle, &pid_file, None)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(std::fs::File::create(&err_log).expect("err log"))
        .status()
        .expect("spawn create");
    assert!(
        status.success(),
        "{name} create failed: {}",
        std::fs::read_to_string(&err_log).unwrap_or_default()
    );
    let created = rt
        .state(&id)
        .expect("state")
        .expect("created container is known");
    assert_eq!(created.status, OciStatus::Created);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(created.pid, pid);

    rt.start(&id).expect("start");
    wait_status(&rt, &id, OciStatus::Running);

    let got = exec(
        &rt,
        &id,
        &spec,
        &[
            "sh",
            "-c",
            "echo out; echo err >&2; cat /etc/hostname; hostname; exit 3",
        ],
        None,
    )
    .expect("exec_sync");
    assert_eq!(
        String::from_utf8_lossy(&got.stdout),
        "out\nit-host\nit-host\n"
    );
    assert_eq!(String::from_utf8_lossy(&got.stderr), "err\n");
    assert_eq!(got.exit_code, 3);
    // The RuntimeDefault profile is loaded: unshare needs CAP_SYS_ADMIN, so it is refused.
    let denied = exec(&rt, &id, &spec, &["unshare", "-n", "true"], None).expect("exec unshare");
    assert_ne!(denied.exit_code, 0, "unshare must fail under seccomp");

    let started = Instant::now();
    let err = exec(
        &rt,
        &id,
        &spec,
        &["sleep", "29"],
        Some(Duration::from_millis(300)),
    )
    .expect_err("timeout");
    assert!(matches!(err, OciError::ExecTimeout { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "timeout took {:?}",
        started.elapsed()
    );
    let ps = exec(&rt, &id, &spec, &["ps", "-o", "args"], None).expect("ps");
    let ps = String::from_utf8_lossy(&ps.stdout).into_owned();
    assert!(
        !ps.contains("sleep 29"),
        "the timed-out process was killed: {ps}"
    );

    assert_eq!(memory_limit(&cgroups_path), 128 << 20);
    let resources = k8s_cri::v1::LinuxContainerResources {
        memory_limit_in_bytes: 64 << 20,
        ..Default::default()
    };
    rt.update(&id, &resources).expect("update");
    assert_eq!(memory_limit(&cgroups_path), 64 << 20);

    rt.kill(&id, nix::sys::signal::Signal::SIGKILL as i32, false)
        .expect("kill");
    wait_status(&rt, &id, OciStatus::Stopped);
    rt.delete(&id, false).expect("delete");
    assert!(
        rt.state(&id).expect("state").is_none(),
        "deleted container is unknown"
    );
    rt.delete(&id, false).expect("deleting again is fine");
}

#[test]
fn runc_container_lifecycle() {
    lifecycle("runc");
}

#[test]
fn crun_container_lifecycle() {
    lifecycle("crun");
}
