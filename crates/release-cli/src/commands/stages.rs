//! `release build <sha>`, `release test <sha>`, and the commit export that `bake` shares with them: the pipeline,
//! the template and the commands are read from the commit itself, never from the work tree.

use std::path::PathBuf;

use release_core::model::ids::CommitSha;
use release_core::model::pipeline::{self, Pipeline};
use release_core::ports::{Export, Workspace};
use release_core::{Error, ErrorKind, Result};
use release_packer::GitWorkspace;

use crate::args::Global;
use crate::context;
use crate::output::Output;

/// One commit, exported, with the pipeline as that commit has it.
pub struct CommitExport {
    pub workspace: GitWorkspace,
    pub sha: CommitSha,
    pub export: Export,
    pub pipeline: Pipeline,
}

pub async fn export_commit(g: &Global, out: &Output, rev: &str) -> Result<CommitExport> {
    let files = context::selected_files(g)?;
    if files.len() > 1 {
        // Reuse the checkout's own message for several pipelines.
        context::load_pipeline(g)?;
    }
    let file = std::fs::canonicalize(&files[0])
        .map_err(|e| Error::not_found(format!("cannot read {}: {e}", files[0].display())))?;
    let workspace = GitWorkspace::discover(file.parent().unwrap_or(&file))?;
    let rel: PathBuf = file
        .strip_prefix(workspace.root())
        .map_err(|_| Error::input(format!("{} is outside the git repository {}", file.display(), workspace.root().display())))?
        .to_path_buf();
    let sha = workspace.resolve(rev).await?;
    let export = workspace.export(&sha).await?;
    out.progress(format!("exported {} into {}", sha.short(), export.dir.display()));
    let in_export = export.dir.join(&rel);
    if !in_export.is_file() {
        return Err(Error::not_found(format!("{} does not exist at commit {}; commit it first", rel.display(), sha.short())));
    }
    let pipeline = pipeline::load_for_bake(&in_export).map_err(|diags| {
        Error::input(format!("{} at commit {} is not valid; fix it in a new commit", rel.display(), sha.short()))
            .with_details(diags.iter().map(|d| d.to_string().replace(&export.dir.display().to_string(), "<commit>")).collect())
    })?;
    Ok(CommitExport { workspace, sha, export, pipeline })
}

pub async fn build(g: &Global, out: &Output, rev: &str) -> Result<()> {
    let c = export_commit(g, out, rev).await?;
    let start = std::time::Instant::now();
    c.workspace.run_stage("build", &c.pipeline.build.command, &c.export.dir).await?;
    let artifact = c.export.dir.join(&c.pipeline.build.artifact);
    let size = std::fs::metadata(&artifact).map(|m| m.len()).map_err(|_| {
        Error::new(
            ErrorKind::StageFailed,
            format!("the build succeeded but did not write the artifact {}; fix [build] artifact or the build", c.pipeline.build.artifact),
        )
    })?;
    let secs = start.elapsed().as_secs_f64();
    let doc = serde_json::json!({
        "ok": true, "stage": "build", "commit": c.sha, "command": c.pipeline.build.command,
        "artifact": c.pipeline.build.artifact, "artifact_bytes": size, "seconds": secs,
    });
    out.result(&doc, || format!("build of {} ok in {secs:.1}s: {} ({size} bytes)", c.sha.short(), c.pipeline.build.artifact));
    Ok(())
}

pub async fn test(g: &Global, out: &Output, rev: &str) -> Result<()> {
    let c = export_commit(g, out, rev).await?;
    let Some(test) = &c.pipeline.test else {
        return Err(Error::not_found(format!("{} has no [test] section; add one with a command", c.pipeline.file.display())));
    };
    let start = std::time::Instant::now();
    c.workspace.run_stage("test", &test.command, &c.export.dir).await?;
    let secs = start.elapsed().as_secs_f64();
    let doc = serde_json::json!({ "ok": true, "stage": "test", "commit": c.sha, "command": test.command, "seconds": secs });
    out.result(&doc, || format!("test of {} ok in {secs:.1}s", c.sha.short()));
    Ok(())
}
