//! `release history [--env ENV] [--limit N]`: the ledger, newest first, including environments no longer in the
//! pipeline file.

use release::model::ids::short_sha;
use release::model::error::Input;
use release::Result;

use crate::args::Global;
use crate::context;
use crate::output::Output;

pub async fn run(g: &Global, out: &Output, env: Option<&str>, limit: u32, outcome: Option<&str>) -> Result<()> {
    if limit == 0 {
        return Err(Input::Zero { flag: "--limit" }.into());
    }
    let outcome = outcome.map(release::model::ledger::Outcome::parse).transpose()?;
    let pipeline = context::load_pipeline_to_read(g)?;
    if let Some(e) = env {
        release::model::ids::EnvName::parse(e)?;
    }
    let c = context::connected(g, pipeline, "history", context::Writes::Nothing).await?;
    let (mut doc, records, waiting) = crate::documents::history(&c.release, env, limit, outcome).await?;
    let app = c.release.pipeline.app.clone();
    context::add_calls(&mut doc, &c.app);
    out.result(&doc, || {
        if records.is_empty() && waiting.is_empty() {
            return format!(
                "no ledger records for {app}{}{} yet",
                env.map(|e| format!(" in env {e}")).unwrap_or_default(),
                outcome.map(|o| format!(" with outcome {}", o.as_str())).unwrap_or_default()
            );
        }
        let queued = waiting.iter().rev().map(|t| {
            vec![
                t.arrival.to_string(),
                t.holder.clone(),
                t.action.as_str().to_owned(),
                t.env.to_string(),
                "-".into(),
                t.commit.as_ref().map(|c| short_sha(c.as_str()).to_owned()).unwrap_or_else(|| "-".into()),
                "-".into(),
                format!("queued ({})", t.id),
                "-".into(),
            ]
        });
        let rows: Vec<Vec<String>> = queued.chain(records
            .iter()
            .map(|r| {
                let (from, to) = r.from_to();
                vec![
                    r.started.to_string(),
                    r.actor.to_string(),
                    r.action_name().to_string(),
                    r.env.to_string(),
                    r.cluster().map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                    r.commit().map(|c| short_sha(c.as_str()).to_owned()).unwrap_or_else(|| "-".into()),
                    format!("{from} -> {to}"),
                    format!("{}{}{}", r.outcome.as_str(), if r.forced { " (forced)" } else { "" }, if r.gates_overridden.is_some() { " (gates overridden)" } else { "" }),
                    // One line per record: the reason's first line; a break-glass override says why first.
                    match &r.gates_overridden {
                        Some(o) => format!("override: {} (past: {})", o.reason, o.closed.join("; ")),
                        None => r.detail.as_deref().and_then(|d| d.lines().next()).filter(|d| !d.trim().is_empty()).unwrap_or("-").to_owned(),
                    },
                ]
            }))
            .collect();
        crate::output::table(&["TIME", "ACTOR", "ACTION", "ENV", "CLUSTER", "COMMIT", "FROM -> TO", "OUTCOME", "REASON"], &rows)
    });
    Ok(())
}
