//! Finding the pipeline file and connecting to AWS, shared by every command.

use std::path::{Path, PathBuf};

use release_aws::{Aws, AwsOptions};
use release_core::pipeline::{self, Pipeline};
use release_core::{Error, ErrorKind, Result};

use crate::args::Global;

/// The nearest `pipelines/` directory at or above the current directory, relative to it when inside it, so that
/// messages name `pipelines/hello.toml` rather than an absolute path.
pub fn pipelines_dir() -> Result<PathBuf> {
    let cwd = std::env::current_dir().map_err(|e| Error::internal(format!("cannot read the current directory: {e}")))?;
    let dir = cwd
        .ancestors()
        .map(|d| d.join("pipelines"))
        .find(|d| d.is_dir())
        .ok_or_else(|| Error::input("no pipelines/ directory here or above; cd into the project or pass --pipeline FILE"))?;
    Ok(dir.strip_prefix(&cwd).map(Path::to_path_buf).unwrap_or(dir))
}

/// The pipeline files the command line selects: `--pipeline`, `--app`, or every file in `pipelines/`.
pub fn selected_files(g: &Global) -> Result<Vec<PathBuf>> {
    if let Some(p) = &g.pipeline {
        return Ok(vec![p.clone()]);
    }
    let dir = pipelines_dir()?;
    if let Some(app) = &g.app {
        return Ok(vec![app_file(&dir, app)?]);
    }
    let files = pipeline::pipeline_files(&dir)
        .map_err(|e| Error::internal(format!("cannot list {}: {e}", dir.display())))?;
    if files.is_empty() {
        return Err(Error::input(format!("{} holds no pipeline files; create {}/<app>.toml", dir.display(), dir.display())));
    }
    Ok(files)
}

fn app_file(dir: &Path, app: &str) -> Result<PathBuf> {
    let file = dir.join(format!("{app}.toml"));
    if file.is_file() {
        return Ok(file);
    }
    let known = known_apps(dir);
    Err(Error::new(ErrorKind::NotFound, format!("no pipeline for app `{app}` ({} does not exist); known apps: {known}", file.display())))
}

fn known_apps(dir: &Path) -> String {
    let names: Vec<String> = pipeline::pipeline_files(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

/// The one pipeline a command works on.
pub fn load_pipeline(g: &Global) -> Result<Pipeline> {
    let files = selected_files(g)?;
    if files.len() > 1 {
        let dir = files[0].parent().unwrap_or(Path::new("."));
        return Err(Error::input(format!("there are several pipelines ({}); pass --app NAME", known_apps(dir))));
    }
    load_file(&files[0])
}

/// One pipeline file, its problems as one error (with every diagnostic above it).
pub fn load_file(file: &Path) -> Result<Pipeline> {
    pipeline::load_file(file).map_err(|diags| {
        let n = diags.len();
        Error::input(format!(
            "{} has {n} problem{}; run `release validate` and fix {}",
            file.display(),
            if n == 1 { "" } else { "s" },
            if n == 1 { "it" } else { "them" }
        ))
        .with_details(diags.iter().map(ToString::to_string).collect())
    })
}

/// Connects to AWS with the command line on top of the pipeline's region and the config chain.
pub async fn connect(g: &Global, pipeline: &Pipeline) -> Result<Aws> {
    let opts = AwsOptions {
        endpoint_url: g.endpoint_url.clone(),
        region: g.region.clone().or_else(|| pipeline.region.clone()),
        profile: g.profile.clone(),
    };
    Aws::connect(&opts).await
}

/// Who is acting: CI's actor variable, else the git user, else the OS user; plus the AWS caller identity.
pub async fn actor(aws: &Aws) -> Result<release_core::ledger::Actor> {
    let from_env = ["RELEASE_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILDKITE_BUILD_CREATOR", "CIRCLE_USERNAME", "BUILD_USER_ID"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()));
    let name = match from_env {
        Some(n) => n,
        None => std::process::Command::new("git")
            .args(["config", "user.name"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("LOGNAME").ok())
            .unwrap_or_else(|| "unknown".into()),
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into());
    let caller = aws.caller_arn().await?;
    Ok(release_core::ledger::Actor { name, caller, host })
}

/// A full sha: taken as is when it already is one, else resolved with git in the current checkout.
pub async fn resolve_commit(rev: &str) -> Result<release_core::ids::CommitSha> {
    if let Ok(sha) = release_core::ids::CommitSha::parse(rev) {
        return Ok(sha);
    }
    let cwd = std::env::current_dir().map_err(|e| Error::internal(format!("cannot read the current directory: {e}")))?;
    use release_core::ports::Workspace;
    release_packer::GitWorkspace::discover(&cwd)?.resolve(rev).await
}

/// Asks on a terminal before changing production; `--yes`, or no terminal (CI), skips the question.
pub fn confirm(g: &Global, question: &str) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if g.yes || !std::io::stdin().is_terminal() {
        return Ok(());
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).ok();
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::Refused, "not confirmed; nothing was changed (pass --yes to skip the question)"))
    }
}

/// Ctrl-C and SIGTERM set the flag; the engine rolls back at its next step.
pub fn cancellation() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = flag.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => return,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        eprintln!("interrupted: rolling back at the next step (the lock is released after)");
        f.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    flag
}

/// The test-only crash hook: `RELEASE_TEST_CRASH_AT=<step>` kills the process right there, as kill -9 would.
pub fn crash_hook(step: &str) -> Result<()> {
    if std::env::var("RELEASE_TEST_CRASH_AT").is_ok_and(|s| s == step) {
        eprintln!("RELEASE_TEST_CRASH_AT={step}: dying now");
        std::process::abort();
    }
    Ok(())
}

/// Adds the AWS calls this command made, by operation, to its JSON result.
pub fn add_calls(doc: &mut serde_json::Value, calls: &release_aws::CallCounter) {
    let snapshot = calls.snapshot();
    doc["api_calls_total"] = snapshot.values().sum::<u64>().into();
    doc["api_calls"] = serde_json::to_value(&snapshot).unwrap_or_default();
}
