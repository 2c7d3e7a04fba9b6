//! `release switch`, `release rollback`, `release status`, `release history`.

use std::collections::BTreeMap;

use release_core::ids::EnvName;
use release_core::promote::{Hooks, PromoteOptions};
use release_core::switch::{self, SwitchOptions};
use release_core::{status, Result};

use crate::args::Global;
use crate::context;
use crate::output::Output;

pub async fn switch(g: &Global, out: &Output, cluster: &str, weight: Option<u8>, plan: bool, force: bool) -> Result<()> {
    let pipeline = context::load_pipeline(g)?;
    let (env, _) = pipeline.cluster(cluster)?;
    let aws = context::connect(g, &pipeline).await?;
    let calls = aws.calls();
    let actor = context::actor(&aws).await?;
    let cloud = aws.cloud();
    if !plan {
        context::confirm(g, &format!("send {}% of {}'s traffic to {cluster}?", weight.unwrap_or(100), env.name))?;
    }
    let progress = |line: &str| eprintln!("switch: {line}");
    let hooks = Hooks { actor, progress: &progress, cancelled: context::cancellation(), checkpoint: &context::crash_hook, entropy: super::promote::entropy() };
    let opts = SwitchOptions { weight, force, plan, action: "switch" };
    let start = std::time::Instant::now();
    let report = switch::switch(&cloud, &pipeline, cluster, &opts, &hooks).await?;
    let mut doc = serde_json::to_value(&report).unwrap_or_default();
    doc["ok"] = true.into();
    doc["wall_seconds"] = start.elapsed().as_secs_f64().into();
    context::add_calls(&mut doc, &calls);
    out.result(&doc, || {
        let w = |m: &BTreeMap<String, u8>| m.iter().map(|(c, w)| format!("{c} {w}%")).collect::<Vec<_>>().join(", ");
        if report.planned {
            let mut s = format!("plan: {}: {} -> {}", report.env, w(&report.from), w(&report.to));
            if !report.problems.is_empty() {
                s.push_str(&format!("\n  target not ready (--force needed): {}", report.problems.join("; ")));
            }
            s + "\nnothing was changed (--plan)"
        } else if !report.changed {
            format!("{} already sends that traffic to {} ({}); nothing to do", report.env, report.cluster, w(&report.to))
        } else {
            format!(
                "switched {}: {} -> {} in one Route53 change ({}){}",
                report.env,
                w(&report.from),
                w(&report.to),
                report.commit.as_deref().map(|c| format!("{} runs {}", report.cluster, &c[..12.min(c.len())])).unwrap_or_default(),
                if report.forced { " [forced]" } else { "" }
            )
        }
    });
    Ok(())
}

pub async fn rollback(g: &Global, out: &Output, env: &str) -> Result<()> {
    let pipeline = context::load_pipeline(g)?;
    let environment = pipeline.env(env)?;
    let aws = context::connect(g, &pipeline).await?;
    let region = aws.region().to_owned();
    let calls = aws.calls();
    let actor = context::actor(&aws).await?;
    let cloud = aws.cloud();
    context::confirm(g, &format!("roll {} back to its previous release?", environment.name))?;
    let progress = |line: &str| eprintln!("rollback: {line}");
    let hooks = Hooks { actor, progress: &progress, cancelled: context::cancellation(), checkpoint: &context::crash_hook, entropy: super::promote::entropy() };
    let opts = PromoteOptions { cluster: None, plan: false, batch: None, poll: super::promote::poll_interval(), region };
    let report = switch::rollback(&cloud, &pipeline, environment, &hooks, &opts).await?;
    let mut doc = serde_json::to_value(&report).unwrap_or_default();
    doc["ok"] = true.into();
    context::add_calls(&mut doc, &calls);
    out.result(&doc, || format!("rolled {} back to {} on {} ({})", report.env, &report.commit[..12], report.cluster, report.path));
    Ok(())
}

pub async fn status(g: &Global, out: &Output, env: Option<&str>) -> Result<()> {
    // Every pipeline when none is named and there are several: one view of all apps.
    let pipelines = if g.app.is_none() && g.pipeline.is_none() && env.is_none() {
        let files = context::selected_files(g)?;
        files.iter().map(|f| context::load_file(f)).collect::<Result<Vec<_>>>()?
    } else {
        vec![context::load_pipeline(g)?]
    };
    let aws = context::connect(g, &pipelines[0]).await?;
    let calls = aws.calls();
    let cloud = aws.cloud();
    let mut apps = Vec::new();
    for pipeline in &pipelines {
        apps.push((pipeline.app.to_string(), status::status(&cloud, pipeline, env).await?));
    }
    let mut doc = serde_json::json!({
        "ok": true,
        "apps": apps.iter().map(|(app, envs)| serde_json::json!({ "app": app, "environments": envs })).collect::<Vec<_>>(),
    });
    if let [(app, envs)] = apps.as_slice() {
        doc["app"] = app.clone().into();
        doc["environments"] = serde_json::to_value(envs).unwrap_or_default();
    }
    context::add_calls(&mut doc, &calls);
    out.result(&doc, || {
        let mut s = String::new();
        for (app, envs) in &apps {
            if apps.len() > 1 {
                s.push_str(&format!("{app}\n"));
            }
            s.push_str(&status_table(envs));
        }
        s
    });
    Ok(())
}

fn status_table(envs: &[status::EnvStatus]) -> String {
    let mut s = format!("{:<10} {:<10} {:<9} {:<12} {:<21} {:<20} {:>9}\n", "ENV", "CLUSTER", "ROLE", "COMMIT", "AMI", "BAKED", "HEALTHY");
    for e in envs {
        for c in &e.clusters {
            let role = match c.weight {
                Some(w) if c.role == "live" && w < 100 => format!("live {w}%"),
                _ => c.role.clone(),
            };
            let commit = match (&c.commit, c.commits.len()) {
                (Some(sha), _) => sha[..12].to_owned(),
                (None, 0) => "-".into(),
                (None, n) => format!("{n} commits"),
            };
            s.push_str(&format!(
                "{:<10} {:<10} {:<9} {:<12} {:<21} {:<20} {:>9}\n",
                e.env,
                c.cluster,
                role,
                commit,
                c.ami.as_deref().unwrap_or("-"),
                c.baked.as_deref().map(|b| b.get(..19).unwrap_or(b)).unwrap_or("-"),
                format!("{}/{}", c.healthy, c.total)
            ));
        }
        if let Some(n) = &e.note {
            s.push_str(&format!("{:<10} note: {n}\n", ""));
        }
        if let Some(l) = &e.last {
            s.push_str(&format!(
                "{:<10} last: {} {} by {} at {} ({})\n",
                "",
                l.action,
                l.commit.as_deref().map(|c| &c[..12.min(c.len())]).unwrap_or("-"),
                l.actor,
                l.started,
                l.outcome
            ));
        }
    }
    s
}

pub async fn history(g: &Global, out: &Output, env: Option<&str>, limit: u32) -> Result<()> {
    let pipeline = context::load_pipeline(g)?;
    let envs: Vec<EnvName> = match env {
        Some(e) => vec![pipeline.env(e)?.name.clone()],
        None => pipeline.envs.iter().map(|e| e.name.clone()).collect(),
    };
    let aws = context::connect(g, &pipeline).await?;
    let calls = aws.calls();
    let cloud = aws.cloud();
    let mut records = Vec::new();
    for e in &envs {
        records.extend(cloud.ledger.records(&pipeline.ledger_table, &pipeline.app, e, limit).await?);
    }
    records.sort_by(|a, b| b.started.cmp(&a.started).then(b.release_id.cmp(&a.release_id)));
    records.truncate(limit as usize);
    let mut doc = serde_json::json!({ "ok": true, "app": pipeline.app, "records": records });
    context::add_calls(&mut doc, &calls);
    out.result(&doc, || {
        if records.is_empty() {
            return format!("no ledger records for {} yet", pipeline.app);
        }
        let mut s = format!("{:<20} {:<16} {:<9} {:<8} {:<8} {:<12} {:<34} {}\n", "TIME", "ACTOR", "ACTION", "ENV", "CLUSTER", "COMMIT", "FROM -> TO", "OUTCOME");
        for r in &records {
            // Commits are shortened; switch weights (`prod1=100,prod2=0`) are not.
            let short = |c: &str| if c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()) { c[..12].to_owned() } else { c.to_owned() };
            let from_to = format!(
                "{} -> {}",
                r.from.as_deref().map(short).unwrap_or_else(|| "-".into()),
                r.to.as_deref().map(short).unwrap_or_else(|| "-".into())
            );
            s.push_str(&format!(
                "{:<20} {:<16} {:<9} {:<8} {:<8} {:<12} {:<34} {}{}\n",
                r.started.to_string(),
                r.actor,
                r.action,
                r.env,
                r.cluster.as_deref().unwrap_or("-"),
                r.commit.as_deref().map(short).unwrap_or_else(|| "-".into()),
                from_to,
                r.outcome.as_str(),
                if r.forced { " (forced)" } else { "" }
            ));
        }
        s
    });
    Ok(())
}
