//! `release build <sha>`, `release test <sha>`, and the commit export that `bake` shares with them: the pipeline,
//! the template and the commands are read from the commit itself, never from the work tree.

use release::model::error::{NotFound, Stage};
use release::{Checkout, Error, Result};

use crate::args::Global;
use crate::context;
use crate::output::Output;

/// One commit, exported, with the pipeline as that commit has it.
pub async fn export_commit(g: &Global, out: &Output, rev: &str) -> Result<Checkout> {
    let files = context::selected_files(g)?;
    if files.len() > 1 {
        // Reuse the checkout's own message for several pipelines.
        context::load_pipeline(g)?;
    }
    Checkout::export(&files[0], rev, |line| out.progress(line.to_owned())).await
}

pub async fn build(g: &Global, out: &Output, rev: &str) -> Result<()> {
    let c = export_commit(g, out, rev).await?;
    let start = std::time::Instant::now();
    c.run_stage("build", &c.pipeline.build.command).await?;
    let artifact = c.export.dir.join(&c.pipeline.build.artifact);
    let size = std::fs::metadata(&artifact).map(|m| m.len()).map_err(|_| Error::from(Stage::NoArtifact { artifact: c.pipeline.build.artifact.to_string() }))?;
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
        return Err(NotFound::TestSection { file: c.pipeline.file.clone() }.into());
    };
    let start = std::time::Instant::now();
    c.run_stage("test", &test.command).await?;
    let secs = start.elapsed().as_secs_f64();
    let doc = serde_json::json!({ "ok": true, "stage": "test", "commit": c.sha, "command": test.command, "seconds": secs });
    out.result(&doc, || format!("test of {} ok in {secs:.1}s", c.sha.short()));
    Ok(())
}
