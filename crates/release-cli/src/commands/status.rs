//! `release status [--env ENV]`: every app's when there are several pipelines and no --app.

use release::model::ids::short_sha;
use release::ops::status::{self, EnvStatus};
use release::Result;

use crate::args::Global;
use crate::context;
use crate::output::Output;

pub async fn run(g: &Global, out: &Output, env: Option<&str>) -> Result<()> {
    // Every pipeline when none is named and there are several: one view of all apps.
    let pipelines = if g.app.is_none() && g.pipeline.is_none() && env.is_none() {
        let files = context::selected_files(g)?;
        files.iter().map(|f| context::read_file(f)).collect::<Result<Vec<_>>>()?
    } else {
        vec![context::load_pipeline_to_read(g)?]
    };
    let first = pipelines[0].clone();
    let c = context::connected(g, first, "status", context::Writes::Nothing).await?;
    let cloud = c.release.session.cloud.clone();
    let now = cloud.clock.now();
    let (mut doc, apps) = crate::documents::status(&c.app, &pipelines, env).await?;
    context::add_calls(&mut doc, &c.app);
    out.result(&doc, || {
        let mut s = String::new();
        for (app, envs) in &apps {
            if apps.len() > 1 {
                s.push_str(&format!("{app}\n"));
            }
            s.push_str(&table(envs, now));
        }
        s
    });
    // The document or table is out; the exit code and the error line say what is wrong.
    match crate::documents::status_problem(&apps) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn table(envs: &[EnvStatus], now: release::model::clock::Timestamp) -> String {
    let mut s = format!("{:<10} {:<10} {:<9} {:<12} {:<21} {:<20} {:>9}\n", "ENV", "CLUSTER", "ROLE", "COMMIT", "AMI", "BAKED", "HEALTHY");
    for e in envs {
        for c in &e.clusters {
            let role = match c.share {
                Some(p) if c.role == "live" && p < 100 => format!("live {p}%"),
                _ => c.role.clone(),
            };
            let commit = match (&c.commit, c.commits.len()) {
                (Some(sha), _) => short_sha(sha).to_owned(),
                (None, 0) => "-".into(),
                (None, n) => format!("{n} commits"),
            };
            // healthy of the count the cluster should run; the instances it has when that differs.
            let health = if c.total as u32 == c.count || c.total == 0 && c.healthy == 0 {
                format!("{}/{}", c.healthy, c.count)
            } else {
                format!("{}/{} ({} up)", c.healthy, c.count, c.total)
            };
            s.push_str(&format!(
                "{:<10} {:<10} {:<9} {:<12} {:<21} {:<20} {:>9}\n",
                e.env,
                c.cluster,
                role,
                commit,
                c.ami.as_deref().unwrap_or("-"),
                c.baked.as_deref().map(|b| b.get(..19).unwrap_or(b)).unwrap_or("-"),
                health
            ));
            for g in &c.groups {
                let state = match (g.disabled_at, g.window_left) {
                    (Some(at), Some(left)) => format!(
                        "disabled {} ago, {} left of its rollback window",
                        release::model::clock::format_duration(std::time::Duration::from_secs(now.since(at).as_secs())),
                        release::model::clock::format_duration(std::time::Duration::from_secs(left.as_secs()))
                    ),
                    _ => g.state.clone(),
                };
                s.push_str(&format!(
                    "{:<10} group {} {}: {} desired (min {}, max {}), {} InService, {} healthy\n",
                    "",
                    g.name,
                    state,
                    g.desired,
                    g.min,
                    g.max,
                    g.in_service,
                    g.healthy
                ));
            }
            for st in &c.strays {
                s.push_str(&format!("{:<10} stray in {}: {}\n", "", c.target, st.describe()));
            }
            for id in &c.terminated {
                s.push_str(&format!("{:<10} {}\n", "", release::observe::world::describe_terminated(id)));
            }
            if let Some(n) = &c.note {
                s.push_str(&format!("{:<10} note: {n}\n", ""));
            }
        }
        if let Some(op) = &e.operation {
            s.push_str(&format!("{:<10} {}\n", "", status::describe_operation(op, now)));
        }
        if let Some(l) = &e.lock {
            s.push_str(&format!(
                "{:<10} locked by {} ({}{}) since {}{}\n",
                "",
                l.lock.holder,
                l.lock.host,
                if l.lock.doing.is_empty() { String::new() } else { format!(", {}", l.lock.doing) },
                l.lock.acquired,
                if l.stale { "; its lease ran out (holder gone): `release unlock` breaks it" } else { "" }
            ));
        }
        for (i, t) in e.queue.iter().enumerate() {
            s.push_str(&format!("{:<10} waiting #{}: {} {} (ticket {}, since {})\n", "", i + 1, t.holder, t.doing, t.id, t.arrival));
        }
        // A cluster's note is printed under it; the environment's, when the same, would read as the next one's.
        if let Some(n) = e.note.as_ref().filter(|n| !e.clusters.iter().any(|c| c.note.as_ref() == Some(*n))) {
            s.push_str(&format!("{:<10} note: {n}\n", ""));
        }
        if let Some(l) = &e.last {
            s.push_str(&format!(
                "{:<10} last: {} {} by {} at {} ({})\n",
                "",
                l.action,
                l.commit.as_deref().map(short_sha).unwrap_or("-"),
                l.actor,
                l.started,
                l.outcome
            ));
        }
    }
    s
}
