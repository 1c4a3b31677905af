//! `cri-cleanup ENDPOINT`: stops and removes every CRI pod of a runtime, then any container
//! left without one. `scripts/containerd-down.sh` runs it before it stops the test containerd,
//! because shims and containers outlive the daemon.

use kubelet_cri::RuntimeService;
use kubelet_cri::remote::RemoteRuntime;
use std::process::ExitCode;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(endpoint), None) = (args.next(), args.next()) else {
        eprintln!("usage: cri-cleanup unix:///path/to/cri.sock");
        return ExitCode::from(2);
    };
    match clean(&endpoint).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cri-cleanup: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn clean(endpoint: &str) -> Result<(), kubelet_cri::CriError> {
    let runtime = RemoteRuntime::connect(endpoint, endpoint, Duration::from_secs(60)).await?;
    for id in kubelet_testkit::remove_sandboxes(&runtime, None).await? {
        eprintln!("cri-cleanup: removed pod sandbox {id}");
    }
    for container in runtime.list_containers(None).await? {
        runtime.remove_container(&container.id).await?;
        eprintln!("cri-cleanup: removed container {}", container.id);
    }
    Ok(())
}
