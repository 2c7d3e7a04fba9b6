//! `release queue [--env ENV]` and `release queue cancel <ticket>`: who holds each environment's lock and who waits
//! for it (`--wait`), in the order they will run.

use release::model::clock::format_duration;
use release::engine::queue::Wait;
use release::model::error::Input;
use release::Result;

use crate::args::{Global, QueueAction};
use crate::context;
use crate::output::Output;

/// `--wait [DUR]` as clap gives it (`forever` when given without a value).
pub fn wait(flag: Option<&str>) -> Result<Wait> {
    let flag = flag.map(|f| (f != "forever").then_some(f));
    Wait::from_flag(flag).map_err(|e| Input::Wait { why: e.to_string() }.into())
}

pub async fn run(g: &Global, out: &Output, env: Option<&str>, action: Option<&QueueAction>) -> Result<()> {
    // Reading the queue and cancelling a ticket touch only the ledger: a typo elsewhere must not lock anyone out.
    let pipeline = context::load_pipeline_to_read(g)?;
    if let Some(e) = env {
        pipeline.env(e)?;
    }
    let c = context::connected(g, pipeline, "queue", context::Writes::Nothing).await?;
    if let Some(QueueAction::Cancel { ticket }) = action {
        let t = c.release.cancel_ticket(ticket).await?;
        let mut doc = serde_json::json!({ "ok": true, "cancelled": t });
        context::add_calls(&mut doc, &c.app);
        out.result(&doc, || format!("cancelled ticket {} of env {}: {} by {} (it leaves the queue without running)", t.id, t.env, t.doing, t.holder));
        return Ok(());
    }
    let views = c.release.queue(env).await?;
    let now = c.release.session.cloud.clock.now();
    let mut doc = serde_json::json!({ "ok": true, "app": c.release.pipeline.app, "queues": views });
    context::add_calls(&mut doc, &c.app);
    out.result(&doc, || {
        let mut rows = Vec::new();
        for v in &views {
            if let Some(h) = &v.holder {
                rows.push(vec![v.env.to_string(), "running".into(), h.release_id.to_string(), h.holder.clone(), h.doing.clone(), format_duration(std::time::Duration::from_secs(now.since(h.acquired).as_secs()))]);
            }
            for t in &v.tickets {
                let place = match t.position {
                    Some(p) => format!("waiting #{p}"),
                    None if t.expired => "expired".into(),
                    // Its waiter missed its renewals (killed with -9?): the waiters behind it skip it.
                    None => format!("stale (silent {})", format_duration(std::time::Duration::from_secs(now.since(t.ticket.last_renewed()).as_secs()))),
                };
                rows.push(vec![v.env.to_string(), place, t.ticket.id.to_string(), t.ticket.holder.clone(), t.ticket.doing.clone(), format_duration(std::time::Duration::from_secs(now.since(t.ticket.arrival).as_secs()))]);
            }
        }
        if rows.is_empty() {
            return format!("no lock held and nobody waiting in {}", views.iter().map(|v| format!("{} ({})", v.env, v.mode)).collect::<Vec<_>>().join(", "));
        }
        crate::output::table(&["ENV", "STATE", "ID", "WHO", "WHAT", "FOR"], &rows)
    });
    Ok(())
}
