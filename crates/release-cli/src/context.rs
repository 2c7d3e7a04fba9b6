//! Finding the pipeline file, connecting to AWS, and building the engine's session, shared by every command.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use release_aws::{Aws, AwsOptions};
use release_core::model::ids::CommitSha;
use release_core::model::ledger::Actor;
use release_core::model::pipeline::{self, Pipeline};
use release_core::engine::session::{Session, Signals};
use release_core::{Error, ErrorKind, Release, Result};

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
    let files = pipeline::pipeline_files(&dir).map_err(|e| Error::internal(format!("cannot list {}: {e}", dir.display())))?;
    if files.is_empty() {
        return Err(Error::input(format!("{} holds no pipeline files; create {}/<app>.toml", dir.display(), dir.display())));
    }
    Ok(files)
}

/// Every pipeline file of the directory `file` is in (for checks across apps), `file` itself when alone.
pub fn siblings(file: &Path) -> Vec<PathBuf> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut files = if dir.file_name().is_some_and(|n| n == "pipelines") { pipeline::pipeline_files(dir).unwrap_or_default() } else { Vec::new() };
    if !files.iter().any(|f| f == file) {
        files.push(file.to_path_buf());
    }
    files
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
    let names: Vec<String> =
        pipeline::pipeline_files(dir).unwrap_or_default().iter().filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned())).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
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

/// The one pipeline a read-only command (`status`, `history`) works on: a file with problems that still makes a
/// whole pipeline is used, each problem printed as a warning, so that an incident is not the moment a typo in an
/// unrelated section locks the operator out of reading; commands that change AWS use [`load_pipeline`].
pub fn load_pipeline_to_read(g: &Global) -> Result<Pipeline> {
    let files = selected_files(g)?;
    if files.len() > 1 {
        return load_pipeline(g);
    }
    read_file(&files[0])
}

/// [`load_file`] for a read-only command (see [`load_pipeline_to_read`]).
pub fn read_file(file: &Path) -> Result<Pipeline> {
    let strict = load_file(file);
    if strict.is_ok() {
        return strict;
    }
    match pipeline::load_readable(file) {
        Ok((p, diags)) => {
            eprintln!("warning: {} has {} problem(s); reading anyway (commands that change AWS refuse until `release validate` passes):", file.display(), diags.len().max(1));
            for d in &diags {
                eprintln!("warning: {d}");
            }
            Ok(p)
        }
        Err(_) => strict,
    }
}

/// One pipeline file, checked against the other files of its directory too (a load balancer owned by two apps'
/// clusters); its problems as one error (with every diagnostic above it).
pub fn load_file(file: &Path) -> Result<Pipeline> {
    let all = siblings(file);
    let result = pipeline::load_dir(&all).into_iter().find(|(f, _)| f == file).map(|(_, r)| r).unwrap_or_else(|| pipeline::load_file(file));
    result.map_err(|diags| {
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
    let opts = AwsOptions { endpoint_url: g.endpoint_url.clone(), region: g.region.clone().or_else(|| pipeline.region.clone()), profile: g.profile.clone(), credentials: None };
    Aws::connect(&opts).await
}

/// Who is acting: CI's actor variable, else the git user, else the OS user; plus the AWS caller identity when
/// `caller` (commands that write the ledger; read-only ones spare the call).
pub async fn actor(aws: &Aws, caller: bool) -> Result<Actor> {
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
    let host = hostname();
    let caller = if caller { aws.caller_arn().await? } else { String::new() };
    Ok(Actor { name, caller, host, pid: Some(std::process::id()) })
}

/// How often waits poll AWS; `RELEASE_POLL_SECONDS` overrides (tests and the demo use short ones).
pub fn poll_interval() -> Duration {
    std::env::var("RELEASE_POLL_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0 && *s <= 60.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(5))
}

fn entropy() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

/// A connected pipeline: the engine's facade, the region, and the call counter for the JSON report.
pub struct Connected {
    pub release: Release,
    pub region: String,
    pub calls: release_aws::CallCounter,
}

/// Whether a command writes the ledger (and so records the AWS caller identity).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    Ledger,
    Nothing,
}

/// Loads the pipeline, connects, and builds the session: progress on stderr prefixed with `label`, Ctrl-C/SIGTERM
/// counted for the engine (and, outside an operation, ending the process at once), the test-only crash hook, and
/// the notifier delivering events to the sinks of `[notify]`.
pub async fn connected(g: &Global, pipeline: Pipeline, label: &'static str, writes: Writes) -> Result<Connected> {
    let aws = connect(g, &pipeline).await?;
    let calls = aws.calls();
    let region = aws.region().to_owned();
    let actor = actor(&aws, writes == Writes::Ledger).await?;
    // The sinks of [notify]; a pipeline without any keeps the session's NoNotifier.
    let notifier = (!pipeline.notify.sinks.is_empty()).then(|| Arc::new(crate::notifier::CliNotifier::new(aws.clone())));
    let cloud = aws.cloud();
    let mut session = Session::new(cloud, actor);
    if let Some(n) = notifier {
        session.notifier = n;
    }
    session.reporter = Arc::new(move |line: &str| eprintln!("{label}: {line}"));
    session.signals = signals();
    session.checkpoint = Arc::new(crash_hook);
    session.entropy = entropy();
    session.poll = poll_interval();
    judging(&mut session);
    Ok(Connected { release: Release::new(session, pipeline), region, calls })
}

/// Counts Ctrl-C and SIGTERM for the engine. While no operation claims them nothing is half done, so the process
/// ends at once (exit 130).
fn signals() -> Signals {
    let (tx, rx) = Signals::channel();
    let watched = rx.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else { return };
        loop {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
            if !watched.is_claimed() {
                eprintln!("interrupted; nothing was changed");
                std::process::exit(release_core::model::error::exit::INTERRUPTED);
            }
            tx.signal();
        }
    });
    rx
}

/// The test-only crash hook: `RELEASE_TEST_CRASH_AT=<step>` kills the process right there, as kill -9 would.
pub fn crash_hook(step: &str) -> Result<()> {
    if std::env::var("RELEASE_TEST_CRASH_AT").is_ok_and(|s| s == step) {
        eprintln!("RELEASE_TEST_CRASH_AT={step}: dying now");
        std::process::abort();
    }
    Ok(())
}

/// This machine's name, as locks, records and hooks name it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Whether the lock's holder is a process of this machine that no longer exists (the engine's
/// `runner::judge_holder` adds the hooks it may have left running).
pub fn holder_gone(lock: &release_core::model::ledger::LockInfo) -> bool {
    let here = hostname();
    match lock.pid {
        Some(pid) if here != "unknown" && lock.host == here => !Path::new(&format!("/proc/{pid}")).exists(),
        _ => false,
    }
}

/// What a session needs to judge a lock's holder as `release unlock` does: this host's processes and hooks.
pub fn judging(session: &mut Session) {
    session.hooks = Arc::new(release_packer::LocalHooks);
    session.holder_gone = Arc::new(holder_gone);
}

/// A full sha for `rev`, resolved with git in the current checkout. A full sha git does not know (a shallow CI
/// clone) is accepted only when it has an AMI; anything else git does not know is not found.
pub async fn resolve_commit(rev: &str, release: Option<&Release>) -> Result<CommitSha> {
    use release_core::ports::Workspace;
    let cwd = std::env::current_dir().map_err(|e| Error::internal(format!("cannot read the current directory: {e}")))?;
    let git = release_packer::GitWorkspace::discover(&cwd);
    let known = match &git {
        Ok(ws) => ws.resolve(rev).await,
        Err(e) => Err(Error::not_found(e.message().to_owned())),
    };
    match (known, CommitSha::parse(rev)) {
        (Ok(sha), _) => Ok(sha),
        (Err(e), Ok(full)) => {
            if let Some(r) = release {
                let images = r.session.cloud.images.app_images(&r.pipeline.app).await?;
                if release_core::observe::images::find_ami(&images, &full).is_some() {
                    eprintln!("note: commit {} is not in this checkout (a shallow clone?); its AMI exists, so it is used", full.short());
                    return Ok(full);
                }
            }
            Err(Error::not_found(format!("commit {rev} is not in this repository and has no AMI; check the sha (git log), or fetch it")).with_source(e))
        }
        (Err(e), Err(_)) => Err(e),
    }
}

/// Whether [`confirm`] would ask (a terminal, no `--yes`).
pub fn will_ask(g: &Global) -> bool {
    use std::io::IsTerminal;
    !g.yes && std::io::stdin().is_terminal()
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

/// Adds the AWS calls this command made, by operation, to its JSON result.
pub fn add_calls(doc: &mut serde_json::Value, calls: &release_aws::CallCounter) {
    let snapshot = calls.snapshot();
    doc["api_calls_total"] = snapshot.values().sum::<u64>().into();
    doc["api_calls"] = serde_json::to_value(&snapshot).unwrap_or_default();
}
