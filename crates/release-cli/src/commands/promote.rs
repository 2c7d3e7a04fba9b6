//! `release promote <sha> --env ENV [--cluster C] [--plan] [--batch N] [--force]`.

use release::model::ids::short_sha;
use release::ops::promote::plan::PlanKind;
use release::ops::promote::{PromoteOptions, PromoteOutcome, PromotePlan, PromoteReport};
use release::model::hook::HookName;
use release::model::error::Input;
use release::Result;

use crate::args::Global;
use crate::context;
use crate::output::Output;

pub struct Args<'a> {
    pub rev: &'a str,
    pub env: &'a str,
    pub cluster: Option<&'a str>,
    pub plan: bool,
    pub batch: Option<u32>,
    pub force: bool,
    pub wait: release::engine::queue::Wait,
    pub override_gates: Option<String>,
}

pub async fn run(g: &Global, out: &Output, a: Args<'_>) -> Result<()> {
    if a.batch == Some(0) {
        return Err(Input::Zero { flag: "--batch" }.into());
    }
    let pipeline = context::load_pipeline(g)?;
    let environment = pipeline.env(a.env)?.clone();
    let c = context::connected(g, pipeline, "promote", context::Writes::Ledger).await?;
    let commit = context::resolve_commit(a.rev, &c.app).await?;
    let opts = PromoteOptions { cluster: a.cluster.map(str::to_owned), batch: a.batch, force: a.force, region: c.region.clone(), wait: a.wait, override_gates: a.override_gates.clone(), ..Default::default() };
    if a.plan {
        let plan = c.release.plan_promote(a.env, &commit, &opts).await?;
        let env = c.app.env(a.env)?;
        let report = env.planned_report(&plan);
        let mut doc = serde_json::to_value(&report).unwrap_or_default();
        doc["ok"] = true.into();
        doc["plan"] = serde_json::to_value(&plan).unwrap_or_default();
        let hooks: Vec<(&str, String)> = env.promote_hooks(&plan).into_iter().map(|(n, c)| (HookName::as_str(n), c)).collect();
        doc["hooks"] = serde_json::to_value(&hooks).unwrap_or_default();
        context::add_calls(&mut doc, &c.app);
        out.result(&doc, || format!("{}{}", plan_text(&plan), hooks.iter().map(|(n, c)| format!("\n  hook {n}: {c}")).collect::<String>()));
        return Ok(());
    }
    // The plan applied is always made again under the lock; one made before is only for the question.
    let shown = if environment.is_blue_green() && context::will_ask(g) {
        let plan = c.release.plan_promote(a.env, &commit, &opts).await?;
        if plan.kind() == PlanKind::Deploy {
            context::confirm(g, &format!("{}?", plan.summary))?;
        }
        Some(plan)
    } else {
        None
    };
    let report = c.release.promote(a.env, &commit, &opts, shown.as_ref()).await?;
    let mut doc = serde_json::to_value(&report).unwrap_or_default();
    doc["ok"] = true.into();
    context::add_calls(&mut doc, &c.app);
    let total = doc["api_calls_total"].as_u64().unwrap_or(0);
    out.result(&doc, || report_text(&report, total));
    Ok(())
}

fn plan_text(plan: &PromotePlan) -> String {
    let mut s = format!("plan: {}", plan.summary);
    if let Some(f) = plan.fleet() {
        for l in &f.launches {
            s.push_str(&format!("\n  + {} x{} ({})", l.subnet, l.count, l.availability_zone));
        }
        for i in &f.retire {
            s.push_str(&format!("\n  - {i} (old)"));
        }
        for st in &f.strays {
            s.push_str(&format!("\n  - {} (stray)", st.describe()));
        }
        for i in &f.terminated {
            s.push_str(&format!("\n  - {}", release::observe::world::describe_terminated(i)));
        }
    }
    for z in &plan.place.skipped {
        s.push_str(&format!("\n  skipped {z}"));
    }
    for i in &plan.leftovers.cleanup {
        s.push_str(&format!("\n  x {i} (left by a failed or unfinished release)"));
    }
    if let Some(t) = plan.settle_until() {
        s.push_str(&format!("\n  waits until {t}: {} took live traffic until recently (settle; --force skips)", plan.place.cluster));
    }
    s.push_str("\nnothing was changed (--plan)");
    s
}

fn report_text(r: &PromoteReport, calls: u64) -> String {
    match r.outcome {
        PromoteOutcome::Noop if r.cleaned.is_empty() => format!("{}/{} already runs {}; nothing to do", r.env, r.cluster, short_sha(r.commit.as_str())),
        PromoteOutcome::Noop => format!("{}/{} already runs {}; removed {} leftover instance(s)", r.env, r.cluster, short_sha(r.commit.as_str()), r.cleaned.len()),
        PromoteOutcome::Completed => format!(
            "{}/{} already runs {}: closed the record of unfinished release {} (its fleet was serving)",
            r.env,
            r.cluster,
            short_sha(r.commit.as_str()),
            r.release_id
        ),
        _ => format!(
            "promoted {} ({}) to {}/{} in {:.1}s: {} new, {} retired{}{} (release {}, {} AWS calls)",
            short_sha(r.commit.as_str()),
            r.ami,
            r.env,
            r.cluster,
            r.seconds.get("total").copied().unwrap_or_default(),
            r.new_instances.len(),
            r.retired_instances.len(),
            if r.strays_retired.is_empty() { String::new() } else { format!(", {} stray(s) retired", r.strays_retired.len()) },
            if r.terminated_by_hand.is_empty() { String::new() } else { format!(", {} terminated by hand taken out of the load balancer", r.terminated_by_hand.len()) },
            r.release_id,
            calls
        ),
    }
}
