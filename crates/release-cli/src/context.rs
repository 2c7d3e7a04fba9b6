//! Finding the pipeline file, connecting to AWS, and building the engine's session, shared by every command.

use std::path::{Path, PathBuf};

use release::model::ids::CommitSha;
use release::model::pipeline::{self, Pipeline};
use release::model::error::{Input, Internal, NotFound, Refused};
use release::{App, AppBuilder, Error, Release, Result};

use crate::args::Global;

/// The nearest `pipelines/` directory at or above the current directory, relative to it when inside it, so that
/// messages name `pipelines/hello.toml` rather than an absolute path.
pub fn pipelines_dir() -> Result<PathBuf> {
    let cwd = std::env::current_dir().map_err(|e| Error::from(Internal::System { what: "cannot read the current directory".into(), error: e.to_string() }))?;
    let dir = cwd.ancestors().map(|d| d.join("pipelines")).find(|d| d.is_dir()).ok_or_else(|| Error::from(Input::NoPipelinesDir))?;
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
    let files = pipeline::pipeline_files(&dir).map_err(|e| Error::from(Internal::System { what: format!("cannot list {}", dir.display()), error: e.to_string() }))?;
    if files.is_empty() {
        return Err(Input::NoPipelineFiles { dir }.into());
    }
    Ok(files)
}

/// Every pipeline file of the directory `file` is in (for checks across apps), `file` itself when alone.
pub fn siblings(file: &Path) -> Vec<PathBuf> {
    release::files::siblings(file)
}

fn app_file(dir: &Path, app: &str) -> Result<PathBuf> {
    let file = dir.join(format!("{app}.toml"));
    if file.is_file() {
        return Ok(file);
    }
    let known = known_apps(dir);
    Err(NotFound::App { app: app.to_owned(), file, known }.into())
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
        return Err(Input::SeveralPipelines { known: known_apps(dir) }.into());
    }
    load_file(&files[0])
}

/// The one pipeline a read-only command (`status`, `history`, `images`, `queue`, `rollout status`) or `unlock` works on: a file with problems that still makes a
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
    release::files::load(file)
}

/// An app builder with the command line's AWS options on top of the pipeline's region and the config chain.
pub fn builder(g: &Global, pipeline: Pipeline) -> AppBuilder {
    App::builder_for(pipeline).aws(g.region.clone(), g.profile.clone(), g.endpoint_url.clone())
}

/// A connected pipeline: the app, the engine's face, and the region.
pub struct Connected {
    pub app: App,
    pub release: Release,
    pub region: String,
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
    let app = builder(g, pipeline)
        .caller_identity(writes == Writes::Ledger)
        .reporter(move |line: &str| eprintln!("{label}: {line}"))
        .exit_when_idle(true)
        .checkpoint(crash_hook)
        .connect()
        .await?;
    Ok(Connected { release: app.release().clone(), region: app.region().to_owned(), app })
}

/// The test-only crash hook: `RELEASE_TEST_CRASH_AT=<step>` kills the process right there, as kill -9 would.
pub fn crash_hook(step: &str) -> Result<()> {
    if std::env::var("RELEASE_TEST_CRASH_AT").is_ok_and(|s| s == step) {
        eprintln!("RELEASE_TEST_CRASH_AT={step}: dying now");
        std::process::abort();
    }
    Ok(())
}

/// A full sha for `rev`, resolved with git in the current checkout (see `App::resolve`); a note when it is only
/// known by its AMI.
pub async fn resolve_commit(rev: &str, app: &App) -> Result<CommitSha> {
    let resolved = app.resolve(rev).await?;
    if !resolved.in_checkout {
        eprintln!("note: commit {} is not in this checkout (a shallow clone?); its AMI exists, so it is used", resolved.sha.short());
    }
    Ok(resolved.sha)
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
        Err(Refused::NotConfirmed.into())
    }
}

/// Adds the AWS calls this command made, by operation, to its JSON result.
pub fn add_calls(doc: &mut serde_json::Value, app: &App) {
    let snapshot = app.api_calls();
    doc["api_calls_total"] = snapshot.values().sum::<u64>().into();
    doc["api_calls"] = serde_json::to_value(&snapshot).unwrap_or_default();
}
