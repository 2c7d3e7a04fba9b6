//! `release validate`: every selected pipeline file, every problem, each at file:line:col with a fix hint.

use release::model::pipeline;
use release::model::error::Input;
use release::{Error, Result};
use serde::Serialize;

use crate::args::Global;
use crate::context;
use crate::output::Output;

#[derive(Serialize)]
struct FileReport {
    file: String,
    ok: bool,
    app: Option<String>,
    environments: Vec<String>,
    clusters: Vec<String>,
    problems: Vec<pipeline::Diagnostic>,
    /// `prod: before_traffic, after_traffic` per environment with hooks.
    hooks: Vec<String>,
    /// What is valid but will not work from this machine (a sink's `env:` secret that is not set).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// A webhook whose `env:NAME` secret is unset (or empty) here would fail every event after its retries: said now.
fn unset_secrets(p: &pipeline::Pipeline) -> Vec<String> {
    p.notify
        .sinks
        .iter()
        .filter_map(|s| match &s.kind {
            pipeline::SinkKind::Webhook { secret: Some(pipeline::SecretRef::Env(name)), .. } if std::env::var(name).map_or(true, |v| v.is_empty()) => Some(format!(
                "sink {}: its secret env:{name} is not set on this machine, so every event to it would fail; set {name} to the webhook's HMAC key before running release",
                s.label
            )),
            _ => None,
        })
        .collect()
}

/// The hooks each environment runs, in words.
fn hooks_of(p: &pipeline::Pipeline) -> Vec<String> {
    use release::model::hook::HookName;
    p.envs
        .iter()
        .filter(|e| e.hooks.any())
        .map(|e| {
            let names: Vec<&str> = [HookName::BeforePromote, HookName::BeforeTraffic, HookName::AfterTraffic]
                .into_iter()
                .filter(|n| e.hooks.command(*n).is_some())
                .map(HookName::as_str)
                .collect();
            format!("{}: {}", e.name, names.join(", "))
        })
        .collect()
}

pub fn run(g: &Global, out: &Output) -> Result<()> {
    let files = context::selected_files(g)?;
    // Check across the directory (a load balancer used by two apps), reporting on the selected files.
    let mut all: Vec<std::path::PathBuf> = files.iter().flat_map(|f| context::siblings(f)).collect();
    all.sort();
    all.dedup();
    let loaded = pipeline::load_dir(&all);
    let mut reports = Vec::new();
    for (file, result) in loaded.into_iter().filter(|(f, _)| files.contains(f)) {
        let report = match result {
            Ok(p) => FileReport {
                file: file.display().to_string(),
                ok: true,
                app: Some(p.app.to_string()),
                environments: p.envs.iter().map(|e| e.name.to_string()).collect(),
                clusters: p.envs.iter().flat_map(|e| e.clusters().iter().map(|c| c.name.to_string())).collect(),
                problems: Vec::new(),
                hooks: hooks_of(&p),
                warnings: unset_secrets(&p),
            },
            Err(problems) => FileReport {
                file: file.display().to_string(),
                ok: false,
                app: None,
                environments: Vec::new(),
                clusters: Vec::new(),
                problems,
                hooks: Vec::new(),
                warnings: Vec::new(),
            },
        };
        reports.push(report);
    }
    let problems: usize = reports.iter().map(|r| r.problems.len()).sum();
    let bad_files = reports.iter().filter(|r| !r.ok).count();
    for w in reports.iter().flat_map(|r| r.warnings.iter()) {
        out.progress(format!("warning: {w}"));
    }
    if problems == 0 {
        out.result(&serde_json::json!({ "ok": true, "files": reports }), || {
            reports
                .iter()
                .map(|r| {
                    format!(
                        "ok {} (app {}: environments {}; clusters {}{})\n",
                        r.file,
                        r.app.as_deref().unwrap_or("?"),
                        r.environments.join(", "),
                        r.clusters.join(", "),
                        if r.hooks.is_empty() { String::new() } else { format!("; hooks {}", r.hooks.join("; ")) }
                    )
                })
                .collect()
        });
        return Ok(());
    }
    if out.is_json() {
        out.result(&serde_json::json!({ "ok": false, "files": reports }), String::new);
    }
    let details = if out.is_json() {
        Vec::new()
    } else {
        reports.iter().flat_map(|r| r.problems.iter().map(ToString::to_string)).collect()
    };
    Err(Error::from(Input::Problems { problems, files: bad_files }).with_details(details))
}
