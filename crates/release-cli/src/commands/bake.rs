//! `release bake <sha> [--force]` and `release images`.

use release::Result;

use super::stages::export_commit;
use crate::args::Global;
use crate::context;
use crate::output::Output;

pub async fn run(g: &Global, out: &Output, rev: &str, force: bool) -> Result<()> {
    let c = export_commit(g, out, rev).await?;
    // No ledger record. The writes run in the engine's runner: Ctrl-C stops them at the next wait (packer, in the
    // terminal's process group, gets it too); before them (build, test) it ends the command at once.
    let app = context::builder(g, c.pipeline.clone())
        .caller_identity(false)
        .reporter(|line: &str| eprintln!("bake: {line}"))
        .exit_when_idle(true)
        .checkpoint(context::crash_hook)
        .connect()
        .await?;
    if let Some(url) = app.endpoint_url() {
        out.progress(format!("endpoint {url} set: baking packer's emulator source"));
    }
    let start = std::time::Instant::now();
    let outcome = app.bake(&c, force).await?;
    let total = start.elapsed().as_secs_f64();
    let mut doc = serde_json::to_value(&outcome).unwrap_or_default();
    doc["ok"] = true.into();
    doc["seconds"]["total"] = total.into();
    context::add_calls(&mut doc, &app);
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
    let pipeline = context::load_pipeline_to_read(g)?;
    let c = context::connected(g, pipeline, "images", context::Writes::Nothing).await?;
    let mut doc = crate::documents::images(&c.app).await?;
    let rows: Vec<serde_json::Value> = doc["images"].as_array().cloned().unwrap_or_default();
    context::add_calls(&mut doc, &c.app);
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
