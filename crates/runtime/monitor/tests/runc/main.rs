//! Monitor tests with real runc containers, as root.
//!
//! This binary is also the monitor the tests spawn (`<exe> monitor --config ...`), as the
//! kubelet binary is in production, and the stand-in daemon that the survival test kills
//! (`<exe> spawner CONFIG`). Anything else runs the tests; a plain argument filters them by
//! name. No libtest harness: the monitor must start in a process with no other threads.

mod cases;
mod fixture;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("monitor") => return runtime_monitor::main(args[2..].to_vec()),
        Some("spawner") => return cases::spawner(&args[2]),
        _ => {}
    }
    let filters: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();
    let fixture = match fixture::Fixture::new() {
        Ok(fixture) => fixture,
        Err(message) => {
            eprintln!("runc tests cannot run: {message}");
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
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(&fixture)))
            .unwrap_or_else(|_| Err("panicked".into()));
        match outcome {
            Ok(()) => println!("ok"),
            Err(message) => {
                println!("FAILED\n    {message}");
                failed.push(*name);
            }
        }
    }
    fixture.cleanup();
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        ran - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
