//! mlt-cluster: one binary for the scheduler, the nodes and the clients.
//!
//! Exit codes: 0 success; 1 error; 2 usage; 3 invalid spec or configuration;
//! 4 the scheduler refused us (token, fingerprint, version) or could not be reached.
#![deny(unsafe_code)]

mod cli;
mod config;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
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
            eprintln!("error: {e:#}");
            code
        }
    };
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    std::process::exit(code);
}
