//! `release switch <cluster> [--weight PCT | --steps 10,50,100 --pause DUR] [--plan] [--force] [--wait [DUR]]`.

use release::model::ids::short_sha;
use release::ops::switch::{SwitchOptions, SwitchPlan, SwitchReport};
use release::Result;

use crate::args::Global;
use crate::context;
use crate::output::Output;

#[allow(clippy::too_many_arguments)]
pub async fn run(
    g: &Global,
    out: &Output,
    cluster: &str,
    weight: Option<u8>,
    rollout: super::rollout::StepOptions,
    plan_only: bool,
    force: bool,
    wait: release::engine::queue::Wait,
    override_gates: Option<String>,
) -> Result<()> {
    let pipeline = context::load_pipeline(g)?;
    pipeline.cluster(cluster)?;
    let c = context::connected(g, pipeline, "switch", context::Writes::Ledger).await?;
    let opts = SwitchOptions { weight, force, wait, steps: rollout.steps, pause: rollout.pause, override_gates };
    let start = std::time::Instant::now();
    if plan_only {
        let plan = c.release.plan_switch(cluster, &opts).await?;
        let report = SwitchReport::unchanged(plan.clone(), true);
        // What it would run, as `promote --plan` names its hooks; none when nothing changes.
        let hooks: Vec<(&str, String)> = c.app.env(plan.env.as_str())?.switch_hooks(&plan).into_iter().map(|(n, c)| (n.as_str(), c)).collect();
        let mut doc = serde_json::to_value(&report).unwrap_or_default();
        doc["ok"] = true.into();
        doc["hooks"] = serde_json::to_value(&hooks).unwrap_or_default();
        context::add_calls(&mut doc, &c.app);
        let hook_lines: String = hooks.iter().map(|(n, c)| format!("\n  hook {n}: {c}")).collect();
        out.result(&doc, || plan_text(&plan) + &super::rollout::plan_text(&plan) + &hook_lines + "\nnothing was changed (--plan)");
        return Ok(());
    }
    // The plan applied is always made again under the lock; one made before is only for the question.
    let shown = if context::will_ask(g) {
        let plan = c.release.plan_switch(cluster, &opts).await?;
        if plan.changes {
            context::confirm(g, &format!("switch {}: {}?", plan.env, plan_text(&plan)))?;
        }
        Some(plan)
    } else {
        None
    };
    let report = c.release.switch(cluster, &opts, shown.as_ref()).await?;
    if report.rollout.is_some() {
        return super::rollout::finish(out, &report, &c.app, start);
    }
    let mut doc = serde_json::to_value(&report).unwrap_or_default();
    doc["ok"] = true.into();
    doc["wall_seconds"] = start.elapsed().as_secs_f64().into();
    context::add_calls(&mut doc, &c.app);
    out.result(&doc, || {
        let p = &report.plan;
        if !report.changed {
            format!("{} already sends that traffic to {} ({}); nothing to do", p.env, p.cluster, p.to.describe_shares())
        } else {
            format!(
                "switched {}: {} -> {} in one Route53 change{}{}{}",
                p.env,
                p.from.describe_shares(),
                p.to.describe_shares(),
                p.commit.as_ref().map(|c| format!(" ({} runs {})", p.cluster, short_sha(c.as_str()))).unwrap_or_default(),
                if p.forced && (!p.problems.is_empty() || !p.strays.is_empty()) { " [forced]" } else { "" },
                if report.in_sync { "" } else { "; Route53 had not reported INSYNC yet, but the records hold the new weights" }
            )
        }
    });
    Ok(())
}

fn plan_text(p: &SwitchPlan) -> String {
    let mut s = format!("{} -> {}", p.from.describe_shares(), p.to.describe_shares());
    if let Some(c) = &p.commit {
        s.push_str(&format!(" ({} runs {})", p.cluster, short_sha(c.as_str())));
    }
    if !p.problems.is_empty() {
        s.push_str(&format!("\n  target not ready{}: {}", if p.forced { " (--force)" } else { "" }, p.problems.join("; ")));
    }
    for st in &p.strays {
        s.push_str(&format!("\n  stray in its load balancer: {}", st.describe()));
    }
    if !p.health_not_evaluated.is_empty() {
        let clusters: Vec<&str> = p.health_not_evaluated.iter().map(|c| c.as_str()).collect();
        s.push_str(&format!("\n  EvaluateTargetHealth is off on the record of {} (set by hand): kept so", clusters.join(", ")));
    }
    if !p.changes {
        s.push_str("\n  nothing changes");
    }
    s
}
