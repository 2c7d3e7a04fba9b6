//! `release gc [--plan] [--keep N] [--older-than DUR] [--app NAME|all]`: the plan lists each removal and each kept
//! image with its reason; orphan instances are terminated only when confirmed or with `--yes`.

use release::ops::gc::{GcOptions, Plan, Report};
use release::model::pipeline::Pipeline;
use release::model::ids::short_sha;
use release::model::error::Input;
use release::{Error, Result};

use crate::args::Global;
use crate::context;
use crate::output::Output;

pub async fn run(g: &Global, out: &Output, plan_only: bool, keep: u32, older_than: &str) -> Result<()> {
    let older_than = release::model::clock::parse_duration(older_than).map_err(|why| Error::from(Input::OlderThan { why }))?;
    if keep == 0 {
        // Keeping no rollback target would let gc delete what `release rollback` goes back to next.
        return Err(Input::KeepZero.into());
    }
    let base = GcOptions { keep, older_than, terminate_orphans: false };
    let pipelines = pipelines(g)?;
    let many = pipelines.len() > 1 || g.app.as_deref() == Some("all");
    let mut docs = Vec::new();
    let mut texts = Vec::new();
    for pipeline in pipelines {
        // A plan writes nothing, so it spares the caller-identity call the ledger record needs.
        let writes = if plan_only { context::Writes::Nothing } else { context::Writes::Ledger };
        let c = context::connected(g, pipeline, "gc", writes).await?;
        if plan_only {
            let plan = c.release.plan_gc(&base).await?;
            let mut doc = serde_json::json!({ "ok": true, "planned": true, "app": plan.app, "plan": plan });
            context::add_calls(&mut doc, &c.app);
            texts.push(plan_text(&plan) + "\nnothing was changed (--plan)");
            docs.push(doc);
            continue;
        }
        let mut opts = base.clone();
        opts.terminate_orphans = g.yes;
        // The plan applied is always made again under the locks; one made before is only for the questions.
        let shown = if context::will_ask(g) { ask(g, &c, &base, &mut opts).await? } else { None };
        let report = c.release.gc(&opts, shown.as_ref()).await?;
        let mut doc = serde_json::to_value(&report).unwrap_or_default();
        doc["ok"] = true.into();
        doc["app"] = serde_json::to_value(&report.plan.app).unwrap_or_default();
        context::add_calls(&mut doc, &c.app);
        texts.push(report_text(&report));
        docs.push(doc);
    }
    if many {
        out.result(&serde_json::json!({ "ok": true, "apps": docs }), || texts.join("\n\n"));
    } else {
        let doc = docs.pop().unwrap_or_default();
        out.result(&doc, || texts.join("\n\n"));
    }
    Ok(())
}

/// The pipelines gc runs over: every one with `--app all`, else the one selected.
fn pipelines(g: &Global) -> Result<Vec<Pipeline>> {
    if g.app.as_deref() == Some("all") {
        let mut all = Global { app: None, ..g.clone() };
        all.pipeline = None;
        context::selected_files(&all)?.iter().map(|f| context::load_file(f)).collect::<Result<Vec<_>>>()
    } else {
        Ok(vec![context::load_pipeline(g)?])
    }
}

/// Shows the plan and asks before removing and before terminating orphans (the answer sets
/// `opts.terminate_orphans`); the plan shown, unless there was nothing to ask about.
async fn ask(g: &Global, c: &context::Connected, base: &GcOptions, opts: &mut GcOptions) -> Result<Option<Plan>> {
    let plan = c.release.plan_gc(base).await?;
    eprintln!("{}", plan_text(&plan));
    if plan.images.is_empty() && plan.snapshots.is_empty() && plan.instances.is_empty() {
        return Ok(None);
    }
    if !plan.images.is_empty() || !plan.snapshots.is_empty() {
        context::confirm(g, &format!("remove {} image(s) and {} snapshot(s) of images already gone?", plan.images.len(), plan.snapshots.len()))?;
    }
    if !plan.instances.is_empty() {
        opts.terminate_orphans = context::confirm(g, &format!("terminate {} orphan instance(s)?", plan.instances.len())).is_ok();
    }
    Ok(Some(plan))
}

/// What a gc did, in words.
fn report_text(report: &Report) -> String {
    let mut text = format!(
        "{}: removed {} image(s) and {} snapshot(s), terminated {} instance(s); kept {} image(s){}",
        report.plan.app,
        report.removed_images.len(),
        report.removed_snapshots.len(),
        report.terminated.len(),
        report.plan.kept.len(),
        report.release_id.as_deref().map(|r| format!(" (release {r})")).unwrap_or_else(|| " (nothing to remove)".into())
    );
    for k in &report.plan.kept {
        text.push_str(&format!("\n  keep   {} {}: {}", k.ami, commit(&k.commit), k.reasons.join("; ")));
    }
    if !report.instances_left.is_empty() {
        text.push_str(&format!(
            "\n{} orphan instance(s) left running ({}): pass --yes, or confirm on a terminal, to terminate them",
            report.instances_left.len(),
            report.instances_left.iter().map(|i| i.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    text
}

fn commit(c: &Option<String>) -> &str {
    c.as_deref().map(short_sha).unwrap_or("-")
}

pub fn plan_text(p: &Plan) -> String {
    let mut s = format!("plan: {}", p.summary);
    s.push_str(&format!("\n  locks: {} (keep {}, older than {})", p.envs.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", "), p.keep, p.older_than));
    for i in &p.images {
        s.push_str(&format!("\n  remove {}{} {} ({} snapshot(s)): {}", i.ami, region(&i.region), commit(&i.commit), i.snapshots.len(), i.reason));
    }
    for sn in &p.snapshots {
        s.push_str(&format!("\n  remove {}{} {}: {}", sn.id, region(&sn.region), commit(&sn.commit), sn.reason));
    }
    for i in &p.instances {
        s.push_str(&format!("\n  terminate {} ({}, {} {}, {}; only with --yes or when confirmed): {}", i.id, i.launched_as, i.ami, commit(&i.commit), i.state, i.reason));
    }
    for k in &p.kept {
        s.push_str(&format!("\n  keep   {}{} {}: {}", k.ami, region(&k.region), commit(&k.commit), k.reasons.join("; ")));
    }
    for n in &p.notes {
        s.push_str(&format!("\n  note: {n}"));
    }
    s
}

fn region(r: &Option<String>) -> String {
    r.as_deref().map(|r| format!(" (in {r})")).unwrap_or_default()
}
