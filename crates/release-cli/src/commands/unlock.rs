//! `release unlock --env ENV [--force]`: breaks a lock whose lease ran out or whose holder is provably gone (this
//! host, its process and its hooks gone); a live one only with --force.

use release::Result;

use crate::args::Global;
use crate::context;
use crate::output::Output;

pub async fn run(g: &Global, out: &Output, env: &str, force: bool) -> Result<()> {
    // Breaking a lock needs only the app, the environment and the ledger: an incident is not the moment a typo in
    // an unrelated section of the file keeps the way out shut.
    let pipeline = context::load_pipeline_to_read(g)?;
    pipeline.env(env)?;
    let c = context::connected(g, pipeline, "unlock", context::Writes::Nothing).await?;
    let report = c.release.unlock(env, force).await?;
    let mut doc = serde_json::to_value(&report).unwrap_or_default();
    doc["ok"] = true.into();
    doc["app"] = c.release.pipeline.app.to_string().into();
    context::add_calls(&mut doc, &c.app);
    out.result(&doc, || match (&report.was_held_by, report.broken) {
        (Some(l), true) => format!(
            "unlocked env {}: it was held by {} since {} (release {}, host {}{}; last renewed {:.0}s ago, lease until {}; {})",
            l.env,
            l.holder,
            l.acquired,
            l.release_id,
            l.host,
            if l.doing.is_empty() { String::new() } else { format!(", {}", l.doing) },
            report.silent_for.unwrap_or(0.0),
            l.expires,
            report.holder.as_deref().unwrap_or("")
        ),
        (Some(l), false) => format!("env {}: the lock of {} changed hands while unlocking; nothing was broken, look again", report.env, l.holder),
        (None, _) => format!("env {} was not locked; nothing to do", report.env),
    });
    Ok(())
}
