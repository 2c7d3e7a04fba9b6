//! `release rollback --env ENV [--plan] [--force] [--wait [DUR]]`: one step back; the prompt and the plan name where it goes.

use release::model::ids::short_sha;
use release::ops::promote::PromoteOptions;
use release::ops::rollback::RollbackPlan;
use release::Result;

use crate::args::Global;
use crate::context;
use crate::output::Output;

pub async fn run(g: &Global, out: &Output, env: &str, plan_only: bool, force: bool, wait: release::engine::queue::Wait) -> Result<()> {
    let pipeline = context::load_pipeline(g)?;
    pipeline.env(env)?;
    let c = context::connected(g, pipeline, "rollback", context::Writes::Ledger).await?;
    let opts = PromoteOptions { region: c.region.clone(), wait, force, ..Default::default() };
    // A rollout held by a live run (its lock): that run goes back, asked through the ledger.
    if !plan_only && super::rollout::rollback_during_rollout(out, &c, env).await? {
        return Ok(());
    }
    if plan_only {
        let plan = c.release.plan_rollback(env, &opts).await?;
        let mut doc = serde_json::json!({ "ok": true, "planned": true, "plan": plan });
        context::add_calls(&mut doc, &c.app);
        out.result(&doc, || plan_text(&plan) + "\nnothing was changed (--plan)");
        return Ok(());
    }
    // The plan applied is always made again under the lock; one made before is only for the question.
    let shown = if context::will_ask(g) {
        let plan = c.release.plan_rollback(env, &opts).await?;
        context::confirm(g, &format!("{}?", plan.summary))?;
        Some(plan)
    } else {
        None
    };
    let report = c.release.rollback(env, &opts, shown.as_ref()).await?;
    let mut doc = serde_json::to_value(&report).unwrap_or_default();
    doc["ok"] = true.into();
    context::add_calls(&mut doc, &c.app);
    out.result(&doc, || {
        let p = &report.plan;
        format!(
            "rolled {} back to {} on {} ({}; release {}){}",
            p.env,
            short_sha(p.to_commit.as_str()),
            p.cluster,
            p.path.as_str(),
            report.release_id,
            match &p.next {
                Some(next) => format!("; a further rollback would go to {}", short_sha(next.as_str())),
                None => "; the ledger holds nothing earlier".into(),
            }
        )
    });
    Ok(())
}

fn plan_text(p: &RollbackPlan) -> String {
    let mut s = format!("plan: {}", p.summary);
    if let Some(pp) = &p.promote {
        s.push_str(&format!("\n  first: {}", pp.summary));
    }
    if !p.history.is_empty() {
        let h: Vec<&str> = p.history.iter().map(|r| short_sha(r.commit.as_str())).collect();
        s.push_str(&format!("\n  live before, newest first: {}", h.join(", ")));
    }
    s
}
