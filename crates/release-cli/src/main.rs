//! `release`: wiring only. Parses the command line, loads the pipeline, connects the ports, runs one command
//! module and turns its result into output and an exit code (README "Exit codes").

mod args;
mod commands;
mod context;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;
use crate::output::Output;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    let out = Output::new(cli.global.output);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            out.error(&release_core::Error::internal(format!("cannot start the async runtime: {e}")));
            return ExitCode::from(release_core::error::exit::INTERNAL as u8);
        }
    };
    let result = runtime.block_on(commands::run(&cli, &out));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out.error(&e);
            ExitCode::from(e.kind().exit_code() as u8)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn,release=info",
        1 => "info,release=debug",
        _ => "debug,release=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RELEASE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
