//! The kubelet binary: upstream flags and config file in, a running node agent out. The same
//! binary serves the built-in container runtime alone (`kubelet runtime`), imports images into
//! it (`kubelet runtime import`) and runs its per-container monitors (`kubelet monitor`, started
//! by the runtime itself, so not in --help).

use kubelet::builtin_runtime;
use kubelet_config::{Command, LogFormat, RuntimeCommand};
use std::future::Future;
use std::io::IsTerminal;
use std::process::ExitCode;

/// klog text or upstream's JSON on stderr, as --logging-format and -v say (kubelet-logging).
fn init_logging(verbosity: u8, format: LogFormat) {
    let format = match format {
        LogFormat::Text => kubelet_logging::Format::Text,
        LogFormat::Json => kubelet_logging::Format::Json,
    };
    let terminal = std::io::stderr().is_terminal();
    if let Err(error) = kubelet_logging::init(verbosity, format, std::io::stderr, terminal) {
        eprintln!("Error: cannot set up logging: {error}");
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A container's monitor forks, so it must start while this process has one thread: before
    // logging and before any async runtime.
    if args.first().is_some_and(|arg| arg == "monitor") {
        return runtime_monitor::main(args[1..].to_vec());
    }
    limit_malloc_arenas();
    match kubelet_config::parse_args(args) {
        Ok(Command::Run(cfg)) => {
            // SAFETY: one thread still: no logging and no async runtime yet.
            unsafe { kubelet::sd_notify::take_socket_from_env() };
            init_logging(cfg.verbosity, cfg.logging_format);
            block_on(kubelet::app::run(*cfg))
        }
        Ok(Command::Runtime(RuntimeCommand::Serve(serve))) => {
            init_logging(serve.logging.verbosity, serve.logging.format);
            block_on(builtin_runtime::serve_alone(
                serve,
                kubelet::app::shutdown_signal(),
            ))
        }
        Ok(Command::Runtime(RuntimeCommand::Import(import))) => {
            init_logging(import.logging.verbosity, import.logging.format);
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

/// One glibc malloc arena instead of up to eight per core: the kubelet allocates little and
/// rarely, and every arena keeps its own free pages resident (0.6 MB at 30 pods). An operator's
/// MALLOC_ARENA_MAX or GLIBC_TUNABLES wins.
fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    {
        let tuned = ["MALLOC_ARENA_MAX", "GLIBC_TUNABLES"]
            .iter()
            .any(|var| std::env::var_os(var).is_some());
        if !tuned {
            // SAFETY: mallopt only sets a malloc parameter; one thread still, before any
            // allocation from another thread.
            unsafe { nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1) };
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
            tracing::error!(error = %e, "exiting on an error");
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}
