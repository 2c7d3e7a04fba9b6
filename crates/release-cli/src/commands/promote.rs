//! `release promote <sha> --env ENV [--cluster C] [--plan] [--batch N]` and `release unlock --env ENV`.

use std::time::Duration;

use release_core::promote::{self, Hooks, PromoteOptions};
use release_core::{Error, Result};

use crate::args::Global;
use crate::context;
use crate::output::Output;

pub async fn run(g: &Global, out: &Output, rev: &str, env: &str, cluster: Option<&str>, plan: bool, batch: Option<u32>) -> Result<()> {
    if batch == Some(0) {
        return Err(Error::input("--batch must be at least 1"));
    }
    let pipeline = context::load_pipeline(g)?;
    let environment = pipeline.env(env)?;
    let commit = context::resolve_commit(rev).await?;
    let aws = context::connect(g, &pipeline).await?;
    let calls = aws.calls();
    let region = aws.region().to_owned();
    let actor = context::actor(&aws).await?;
    let cloud = aws.cloud();
    if !plan && environment.dns.is_some() {
        context::confirm(g, &format!("promote {} to the idle cluster of {}?", commit.short(), environment.name))?;
    }
    let progress = |line: &str| eprintln!("promote: {line}");
    let hooks = Hooks {
        actor,
        progress: &progress,
        cancelled: context::cancellation(),
        checkpoint: &context::crash_hook,
        entropy: entropy(),
    };
    let opts = PromoteOptions { cluster: cluster.map(str::to_owned), plan, batch, poll: poll_interval(), region };
    let report = promote::promote(&cloud, &pipeline, environment, &commit, &opts, &hooks).await?;
    let mut doc = serde_json::to_value(&report).unwrap_or_default();
    doc["ok"] = true.into();
    context::add_calls(&mut doc, &calls);
    let total = doc["api_calls_total"].as_u64().unwrap_or(0);
    out.result(&doc, || match report.outcome.as_str() {
        "planned" => {
            let mut s = format!(
                "plan: promote {} ({}) to {}/{}: launch {} instance(s) in {} subnet(s)",
                report.commit.short(),
                report.ami,
                report.env,
                report.cluster,
                report.launches.iter().map(|l| l.count).sum::<u32>(),
                report.launches.len()
            );
            for l in &report.launches {
                s.push_str(&format!("\n  + {} x{} ({})", l.subnet, l.count, l.availability_zone));
            }
            s.push_str(&format!(
                "\n  then register them in the load balancer, wait until healthy, and retire {} old instance(s)\nnothing was changed (--plan)",
                report.retired_instances.len()
            ));
            s
        }
        "noop" => format!("{}/{} already runs {}; nothing to do", report.env, report.cluster, report.commit.short()),
        _ => format!(
            "promoted {} ({}) to {}/{} in {:.1}s: {} new, {} retired (release {}, {} AWS calls)",
            report.commit.short(),
            report.ami,
            report.env,
            report.cluster,
            report.seconds.get("total").copied().unwrap_or_default(),
            report.new_instances.len(),
            report.retired_instances.len(),
            report.release_id,
            total
        ),
    });
    Ok(())
}

pub async fn unlock(g: &Global, out: &Output, env: &str) -> Result<()> {
    let pipeline = context::load_pipeline(g)?;
    let environment = pipeline.env(env)?;
    let aws = context::connect(g, &pipeline).await?;
    let calls = aws.calls();
    let cloud = aws.cloud();
    let held = cloud.lock.break_lock(&pipeline.ledger_table, &pipeline.app, &environment.name).await?;
    let mut doc = serde_json::json!({ "ok": true, "app": pipeline.app, "env": environment.name, "was_held_by": held });
    context::add_calls(&mut doc, &calls);
    out.result(&doc, || match &held {
        Some(l) => format!(
            "unlocked env {}: it was held by {} since {} (release {}, host {}, lease until {})",
            l.env, l.holder, l.acquired, l.release_id, l.host, l.expires
        ),
        None => format!("env {} was not locked; nothing to do", environment.name),
    });
    Ok(())
}

/// How often waits poll AWS; `RELEASE_POLL_SECONDS` overrides (tests and the demo use short ones).
pub fn poll_interval() -> Duration {
    std::env::var("RELEASE_POLL_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0 && *s <= 60.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(5))
}

pub fn entropy() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}
