//! mlt-cluster: one binary for the scheduler, the nodes and the clients.
//!
//! Exit codes: 0 success; 1 error; 2 usage; 3 invalid spec or configuration;
//! 4 the scheduler refused us (token, fingerprint, version) or could not be reached;
//! 5 `run` ended without a single complete trial; 6 the store is damaged (restore a backup)
//! or needs a repair that cannot be done here.
#![deny(unsafe_code)]

mod cli;
mod config;
mod serve;

use clap::Parser;

/// A command that prints (`predict … | head -1`) ends quietly when its reader goes away, as
/// Unix tools do: SIGPIPE's default action instead of Rust's "ignore, then panic on the
/// failed write". Commands that run trials keep ignoring it (see `Cli::runs_trials`).
#[allow(unsafe_code)]
fn end_quietly_on_a_closed_pipe() {
    // SAFETY: called once at the start of `main`, before any other thread exists; restoring
    // a signal's default disposition has no other effect on this process's state.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() {
    let args = cli::Cli::parse();
    // Only the commands that print JSON take `--json` (clap refuses it elsewhere).
    let json = std::env::args().skip(1).any(|a| a == "--json");
    if !args.runs_trials() {
        end_quietly_on_a_closed_pipe();
    }
    // A damaged store's panics inside redb become one clear error, not a backtrace.
    mlt_scheduler::store::quiet_panics();
    let filter = std::env::var("MLT_LOG").unwrap_or_else(|_| args.default_log().to_string());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = match rt.block_on(cli::dispatch(args)) {
        Ok(()) => 0,
        Err(e) => {
            let code = cli::exit_code(&e);
            if json {
                // Under `--json` the error is JSON too, so a program reading us parses both.
                eprintln!(
                    "{}",
                    serde_json::json!({ "error": format!("{e:#}"), "exit_code": code })
                );
            } else {
                eprintln!("error: {e:#}");
            }
            code
        }
    };
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    std::process::exit(code);
}
