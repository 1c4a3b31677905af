//! kubelet-bench: measures kubelet binaries from outside, on a runtime it sets up itself.
//! See BENCHMARKS.md for what each scenario measures and how to read the figures.

mod builtin_runtime;
mod cgroups;
mod cli;
mod error;
mod floor;
mod kubelet_process;
mod machine;
mod observe;
mod plot;
mod pods;
mod pods_endpoint;
mod proc_sampler;
mod purge;
mod report;
mod results;
mod runner;
mod runtime_env;
mod session;
mod stats;

use clap::Parser;
use error::{BenchError, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Our kubelet, as `cargo build --release --bin kubelet` leaves it in this workspace.
fn default_kubelet() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/release/kubelet"
    ))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "kubelet_bench=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kubelet-bench: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kubelet-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: cli::Cli) -> Result<()> {
    let kubelets = runner::kubelet_specs(&cli.opts, default_kubelet());
    if cli.scenario != cli::Scenario::Floor {
        for k in &kubelets {
            if !k.binary.is_file() {
                return Err(BenchError::io(
                    format!(
                        "kubelet binary {} (build ours with `cargo build --release --bin kubelet`)",
                        k.binary.display()
                    ),
                    std::io::ErrorKind::NotFound.into(),
                ));
            }
        }
    }
    let mut envs = Vec::new();
    let mut outcome = Ok(());
    for kind in cli.opts.runtimes() {
        match runtime_env::RuntimeEnv::start(kind, &cli.opts, &default_kubelet()).await {
            Ok(env) => envs.push(env),
            Err(err) => {
                outcome = Err(err);
                break;
            }
        }
    }
    if outcome.is_ok() {
        outcome = measure(&cli, &kubelets, &envs).await;
    }
    // Every bench pod was removed through its runtime by now (sessions and the failure path
    // clean up): only then may a runtime stop.
    for env in envs {
        env.stop();
    }
    outcome
}

async fn measure(
    cli: &cli::Cli,
    kubelets: &[kubelet_process::KubeletSpec],
    envs: &[runtime_env::RuntimeEnv],
) -> Result<()> {
    let mut runtimes = Vec::with_capacity(envs.len());
    for env in envs {
        runtimes.push(runner::RuntimeUnderTest {
            name: env.kind().name(),
            cri: env.connect().await?,
            endpoint: env.endpoint().to_string(),
            process_marker: env.process_marker(),
        });
    }
    let run = runner::Run {
        scenario: cli.scenario,
        opts: &cli.opts,
        kubelets,
        runtimes,
    };
    // On Ctrl-C the run is dropped (which kills a running kubelet), then cleaned up below.
    let outcome = tokio::select! {
        report = run.execute() => report,
        _ = tokio::signal::ctrl_c() => Err(BenchError::Interrupted),
    };
    let report = match outcome {
        Ok(report) => report,
        Err(err) => {
            if let Err(clean) = run.clean().await {
                tracing::error!(%clean, "cleaning up after the failure failed too");
            }
            return Err(err);
        }
    };

    println!("{}", report::table(&report.summary));
    if let Some(path) = &cli.opts.json {
        let json = serde_json::to_string_pretty(&report).map_err(|err| BenchError::Output {
            path: path.clone(),
            reason: err.to_string(),
        })?;
        std::fs::write(path, json).map_err(|err| BenchError::Output {
            path: path.clone(),
            reason: err.to_string(),
        })?;
    }
    if let Some(path) = &cli.opts.plot {
        plot::draw(path, &report.summary, &report.sessions)?;
    }
    Ok(())
}
