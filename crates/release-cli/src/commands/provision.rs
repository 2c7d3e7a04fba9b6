//! `release provision --env ENV [--plan]`: create what the environment needs, idempotently, under its lock.

use release::Result;

use crate::args::Global;
use crate::context;
use crate::output::Output;

pub async fn run(g: &Global, out: &Output, env: &str, plan_only: bool) -> Result<()> {
    let pipeline = context::load_pipeline(g)?;
    let environment = pipeline.env(env)?.clone();
    let c = context::connected(g, pipeline, "provision", context::Writes::Ledger).await?;
    let label = format!("{}/{}", c.release.pipeline.app, environment.name);
    let plan = if plan_only { c.release.plan_provision(env).await? } else { c.release.provision(env).await? };
    let changed = !plan_only && !plan.actions.is_empty();
    let mut doc = serde_json::json!({
        "ok": true,
        "app": c.release.pipeline.app,
        "env": environment.name,
        "region": c.region,
        "plan": plan_only,
        "changed": changed,
        "actions": plan.actions,
        "notes": plan.notes,
        "name_servers": plan.name_servers,
    });
    context::add_calls(&mut doc, &c.app);
    out.result(&doc, || {
        let mut s = if plan.actions.is_empty() {
            format!("{label}: everything exists; nothing to do\n")
        } else {
            let verb = if plan_only { "would" } else { "did" };
            let mut s = format!("{label}: {} action{} ({verb}):\n", plan.actions.len(), if plan.actions.len() == 1 { "" } else { "s" });
            for a in &plan.actions {
                s.push_str(&format!("  + {a}\n"));
            }
            s
        };
        for n in &plan.notes {
            s.push_str(&format!("  note: {n}\n"));
        }
        if !plan.name_servers.is_empty() {
            s.push_str(&format!("  the new hosted zone's name servers (delegate the domain to them): {}\n", plan.name_servers.join(", ")));
        }
        if plan_only {
            s.push_str("nothing was changed (--plan)\n");
        }
        s
    });
    Ok(())
}
