//! `release`: wiring only. Parses the command line, loads the pipeline, connects the ports, runs one command
//! module and turns its result into output and an exit code (README "Exit codes").

mod args;
mod commands;
mod context;
mod documents;
mod output;

use std::process::ExitCode;

use clap::Parser;

use release::model::error::{Input, Internal};

use crate::args::{Cli, OutputFormat};
use crate::output::Output;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    init_logging(cli.global.verbose);
    let out = Output::new(cli.global.output);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            out.error(&Internal::System { what: "cannot start the async runtime".into(), error: e.to_string() }.into());
            return ExitCode::from(release::exit::INTERNAL as u8);
        }
    };
    let result = runtime.block_on(commands::run(&cli, &out));
    // Whatever a command left running (the signal handler, a hook) must not keep the process alive.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A waiting command that a newer one made moot did nothing wrong: its message is the result.
        Err(e) if e.kind() == release::ErrorKind::Superseded => {
            out.result(&serde_json::json!({ "ok": true, "superseded": true, "message": e.message() }), || e.message().to_owned());
            ExitCode::from(e.kind().exit_code() as u8)
        }
        Err(e) => {
            out.error(&e);
            ExitCode::from(e.kind().exit_code() as u8)
        }
    }
}

/// clap's own errors: help and version as clap prints them; usage errors as one JSON document too when
/// `--output json` was asked for, exit 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) {
        let _ = e.print();
        return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
    }
    let args: Vec<String> = std::env::args().collect();
    let json = args.windows(2).any(|w| w[0] == "--output" && w[1] == "json") || args.iter().any(|a| a == "--output=json");
    let (message, command) = one_line(&e.render().to_string());
    let _ = e.print();
    if json {
        let out = Output::new(OutputFormat::Json);
        out.json_error_only(&Input::Usage { message, command }.into());
    }
    ExitCode::from(release::exit::INPUT as u8)
}

/// clap's rendered error as one line, with the lines under its first one (what is missing, the values allowed):
/// `the following required arguments were not provided: --env <ENV>, <SHA>`; and the command it is about, from the
/// usage line (`release promote`).
fn one_line(rendered: &str) -> (String, String) {
    let mut lines = rendered.lines().skip_while(|l| !l.starts_with("error:"));
    let first = lines.next().map(|l| l.trim_start_matches("error:").trim().to_owned()).unwrap_or_else(|| rendered.trim().to_owned());
    let mut under = Vec::new();
    let mut command = "release".to_owned();
    for l in lines {
        if let Some(usage) = l.trim().strip_prefix("Usage:") {
            let words: Vec<&str> = usage.split_whitespace().take_while(|w| !w.starts_with(['[', '<', '-'])).collect();
            if !words.is_empty() {
                command = words.join(" ");
            }
            break;
        }
        if l.trim().starts_with("For more information") {
            break;
        }
        if !l.trim().is_empty() {
            under.push(l.trim());
        }
    }
    let message = match (under.is_empty(), first.ends_with(':')) {
        (true, _) => first,
        (false, true) => format!("{first} {}", under.join(", ")),
        (false, false) => format!("{first}; {}", under.join("; ")),
    };
    (message, command)
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn,release=info",
        1 => "info,release=debug",
        _ => "debug,release=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RELEASE_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
