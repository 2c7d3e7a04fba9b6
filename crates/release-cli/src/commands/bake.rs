//! `release bake <sha> [--force]` and `release images`.

use std::collections::BTreeMap;

use release_core::bake::{self, BakeContext, BakeOptions};
use release_core::ports::tags;
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
    let calls = c.calls;
    let pipeline = &c.release.pipeline;
    // What gc with its defaults would decide, so the table says why each image stays or that it may go.
    let world = release_core::gc::observe(&c.release.session, pipeline).await?;
    let verdicts = release_core::gc::plan_from(pipeline, &world, &Default::default());
    let (images, instances) = (world.images, world.instances);
    let mut complete: Vec<_> = images.into_iter().filter(|i| i.is_complete_bake()).collect();
    complete.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
    let rows: Vec<serde_json::Value> = complete
        .iter()
        .map(|i| {
            let mut running: BTreeMap<String, u32> = BTreeMap::new();
            for inst in instances.iter().filter(|x| x.ami == i.id.as_str() && x.state == "running") {
                let env = inst.tags.get(tags::ENV).map_or("?", String::as_str);
                let cluster = inst.tags.get(tags::CLUSTER).map_or("?", String::as_str);
                *running.entry(format!("{env}/{cluster}")).or_default() += 1;
            }
            serde_json::json!({
                "commit": i.tags.get(tags::COMMIT), "ami": i.id, "name": i.name, "created": i.created,
                "bake_key": i.tags.get(tags::BAKE_KEY), "running": running,
                "gc": verdicts.verdict(&i.id),
            })
        })
        .collect();
    let mut doc = serde_json::json!({ "ok": true, "app": pipeline.app, "images": rows, "gc_defaults": { "keep": verdicts.keep, "older_than": verdicts.older_than } });
    context::add_calls(&mut doc, &calls);
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
