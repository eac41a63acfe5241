//! `nocrd9`: parse flags, validate them once into a `ControlConfig`, set up logging
//! (stderr: stdout may be the MCP channel), run.

use std::process::ExitCode;

use clap::Parser;
use control::config::{Args, Command, ControlConfig, LogFormat, apply_env_aliases, log_filter};

fn main() -> ExitCode {
    let mut args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let cli: Vec<String> = std::env::args().collect();
    apply_env_aliases(&mut args, &cli, |k| std::env::var(k).ok());
    let config = match ControlConfig::from_args(&args) {
        Ok(c) => c,
        Err(problems) => {
            for p in problems {
                eprintln!("nocrd9: {p}");
            }
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(&args.log_level))
        .unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match args.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nocrd9: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.command.clone() {
        #[cfg(feature = "dev")]
        Some(Command::Dev(dev)) => runtime.block_on(control::dev::run(dev)),
        #[cfg(not(feature = "dev"))]
        Some(Command::Dev(_)) => Err(anyhow::anyhow!(
            "this nocrd9 was built without `nocrd9 dev` (cargo feature `dev`)"
        )),
        None => runtime.block_on(control::run::run(config)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nocrd9: {e:#}");
            ExitCode::FAILURE
        }
    }
}
