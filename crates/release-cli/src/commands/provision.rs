//! `release provision --env ENV [--plan]`: create what the environment needs, idempotently.

use release_core::provision;
use release_core::Result;

use crate::args::Global;
use crate::context;
use crate::output::Output;

pub async fn run(g: &Global, out: &Output, env: &str, plan_only: bool) -> Result<()> {
    let pipeline = context::load_pipeline(g)?;
    let environment = pipeline.env(env)?;
    let aws = context::connect(g, &pipeline).await?;
    let region = aws.region().to_owned();
    let calls = aws.calls();
    let cloud = aws.cloud();
    let plan = provision::plan(&cloud, &pipeline, environment).await?;
    let label = format!("{}/{}", pipeline.app, environment.name);
    if !plan_only && !plan.actions.is_empty() {
        for a in &plan.actions {
            out.progress(format!("{label}: {a}"));
        }
        provision::apply(&cloud, &pipeline, environment, &plan).await?;
    }
    let changed = !plan_only && !plan.actions.is_empty();
    let mut doc = serde_json::json!({
        "ok": true,
        "app": pipeline.app,
        "env": environment.name,
        "region": region,
        "plan": plan_only,
        "changed": changed,
        "actions": plan.actions,
    });
    context::add_calls(&mut doc, &calls);
    out.result(&doc, || {
        if plan.actions.is_empty() {
            return format!("{label}: everything exists; nothing to do");
        }
        let verb = if plan_only { "would" } else { "did" };
        let mut s = format!("{label}: {} action{} ({verb}):\n", plan.actions.len(), if plan.actions.len() == 1 { "" } else { "s" });
        for a in &plan.actions {
            s.push_str(&format!("  + {a}\n"));
        }
        if plan_only {
            s.push_str("nothing was changed (--plan)\n");
        }
        s
    });
    Ok(())
}
