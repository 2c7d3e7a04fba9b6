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
    pipeline::load_file(&files[0]).map_err(|diags| {
        let n = diags.len();
        Error::input(format!(
            "{} has {n} problem{}; run `release validate` and fix {}",
            files[0].display(),
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
