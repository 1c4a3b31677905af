//! The kubelet binary: upstream flags and config file in, a running node agent out. The same
//! binary serves the built-in container runtime alone (`kubelet runtime`), imports images into
//! it (`kubelet runtime import`) and runs its per-container monitors (`kubelet monitor`, started
//! by the runtime itself, so not in --help).

use kubelet::builtin_runtime;
use kubelet_config::{Command, LogFormat, RuntimeCommand};
use std::future::Future;
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn init_logging(verbosity: u8, format: LogFormat) {
    // klog levels: 0-1 are the normal operational messages, 2-4 debugging, 5+ tracing.
    let level = match verbosity {
        0 | 1 => "info",
        2..=4 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("KUBELET_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: log files and journald would keep them as text.
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A container's monitor forks, so it must start while this process has one thread: before
    // logging and before any async runtime.
    if args.first().is_some_and(|arg| arg == "monitor") {
        return runtime_monitor::main(args[1..].to_vec());
    }
    match kubelet_config::parse_args(args) {
        Ok(Command::Run(cfg)) => {
            init_logging(cfg.verbosity, cfg.logging_format);
            block_on(kubelet::app::run(*cfg))
        }
        Ok(Command::Runtime(RuntimeCommand::Serve(serve))) => {
            init_logging(0, LogFormat::Text);
            block_on(builtin_runtime::serve_alone(
                serve,
                kubelet::app::shutdown_signal(),
            ))
        }
        Ok(Command::Runtime(RuntimeCommand::Import(import))) => {
            init_logging(0, LogFormat::Text);
            block_on(builtin_runtime::import(import, |line| println!("{line}")))
        }
        Ok(Command::Help(text)) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Command::Version(v)) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs `work` to completion on a multi-threaded runtime; an error is logged and printed.
fn block_on<E: std::fmt::Display>(work: impl Future<Output = Result<(), E>>) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}
