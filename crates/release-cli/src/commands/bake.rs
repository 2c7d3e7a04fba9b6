//! `release bake <sha> [--force]` and `release images`.

use release_core::ops::bake::{self, BakeContext, BakeOptions};
use release_core::Result;
use release_packer::PackerBaker;

use super::stages::export_commit;
use crate::args::Global;
use crate::context;
use crate::output::Output;

pub async fn run(g: &Global, out: &Output, rev: &str, force: bool) -> Result<()> {
    let c = export_commit(g, out, rev).await?;
    let aws = context::connect(g, &c.pipeline).await?;
    let opts = BakeOptions { force, emulator_endpoint: aws.endpoint_url().map(str::to_owned), region: aws.region().to_owned() };
    if let Some(url) = &opts.emulator_endpoint {
        out.progress(format!("endpoint {url} set: baking packer's emulator source"));
    }
    let calls = aws.calls();
    let cloud = aws.cloud();
    let baker = PackerBaker::default();
    let progress = |line: &str| eprintln!("bake: {line}");
    let ctx = BakeContext { cloud: &cloud, workspace: &c.workspace, baker: &baker, progress: &progress };
    let start = std::time::Instant::now();
    let outcome = bake::bake(&ctx, &c.pipeline, &c.export.dir, &c.sha, &opts).await?;
    let total = start.elapsed().as_secs_f64();
    let mut doc = serde_json::to_value(&outcome).unwrap_or_default();
    doc["ok"] = true.into();
    doc["seconds"]["total"] = total.into();
    context::add_calls(&mut doc, &calls);
    out.result(&doc, || {
        if outcome.reused {
            format!("{} (reused: {} at {} already has bake key {})", outcome.ami, outcome.name, outcome.commit.short(), outcome.bake_key.short())
        } else {
            format!("{} ({} baked in {total:.1}s)", outcome.ami, outcome.name)
        }
    });
    Ok(())
}

pub async fn images(g: &Global, out: &Output) -> Result<()> {
    let pipeline = context::load_pipeline(g)?;
    let c = context::connected(g, pipeline, "images", context::Writes::Nothing).await?;
    let mut doc = crate::documents::images(&c.release).await?;
    let rows: Vec<serde_json::Value> = doc["images"].as_array().cloned().unwrap_or_default();
    context::add_calls(&mut doc, &c.calls);
    out.result(&doc, || {
        if rows.is_empty() {
            return format!("no baked images of {} yet; run `release bake <sha>`", c.release.pipeline.app);
        }
        let mut s = format!("{:<12}  {:<21}  {:<24}  {:<8}  {:<24}  {}\n", "COMMIT", "AMI", "CREATED", "KEY", "RUNNING", "GC");
        for r in &rows {
            let running: Vec<String> = r["running"].as_object().map(|m| m.iter().map(|(k, v)| format!("{k} x{v}")).collect()).unwrap_or_default();
            s.push_str(&format!(
                "{:<12}  {:<21}  {:<24}  {:<8}  {:<24}  {}\n",
                r["commit"].as_str().unwrap_or("?").get(..12).unwrap_or("?"),
                r["ami"].as_str().unwrap_or("?"),
                r["created"].as_str().unwrap_or("?"),
                r["bake_key"].as_str().unwrap_or("?").get(..8).unwrap_or("?"),
                if running.is_empty() { "-".to_owned() } else { running.join(", ") },
                r["gc"].as_str().unwrap_or("-")
            ));
        }
        s
    });
    Ok(())
}
