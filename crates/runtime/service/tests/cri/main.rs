//! The CRI service against the real kernel, runc, crun and the Debian CNI plugins, as root.
//!
//! This binary is also the monitor the runtime spawns (`<exe> monitor --config ...`), as the
//! kubelet binary is in production, and a runtime served on a socket (`<exe> serve ...`) for the
//! kill -9 case. Anything else runs the tests; a plain argument filters them by name. No libtest harness: the monitor must start in a process with no other threads.

mod cases;
mod fixture;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("monitor") => return runtime_monitor::main(args[2..].to_vec()),
        Some("serve") => return fixture::serve_main(&args[2..]),
        _ => {}
    }
    // RUST_LOG=debug shows the runtime's spans with their durations.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_writer(std::io::stderr)
            .init();
    }
    let filters: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();
    let fixture = match fixture::Fixture::new() {
        Ok(fixture) => fixture,
        Err(message) => {
            eprintln!("the CRI tests cannot run: {message}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, test) in cases::ALL {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        print!("test {name} ... ");
        let _ = std::io::stdout().flush();
        // A panicking case fails alone; the others and the cleanup still run.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(&fixture)));
        match outcome {
            Ok(()) => println!("ok"),
            Err(_) => {
                println!("FAILED");
                failed.push(*name);
            }
        }
    }
    let leftovers = fixture.cleanup();
    println!(
        "\ntest result: {}. {} passed; {} failed{}",
        if failed.is_empty() && leftovers.is_empty() {
            "ok"
        } else {
            "FAILED"
        },
        ran - failed.len(),
        failed.len(),
        if leftovers.is_empty() {
            String::new()
        } else {
            format!("; left behind: {leftovers:?}")
        }
    );
    if failed.is_empty() && leftovers.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
