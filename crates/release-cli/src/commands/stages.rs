//! `release build <sha>`, `release test <sha>`, and the commit export that `bake` shares with them: the pipeline,
//! the template and the commands are read from the commit itself, never from the work tree.

use release::{Checkout, Error, ErrorKind, Result};

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
    c.run_stage("test", &test.command).await?;
    let secs = start.elapsed().as_secs_f64();
    let doc = serde_json::json!({ "ok": true, "stage": "test", "commit": c.sha, "command": test.command, "seconds": secs });
    out.result(&doc, || format!("test of {} ok in {secs:.1}s", c.sha.short()));
    Ok(())
}
