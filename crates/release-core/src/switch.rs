//! `release switch <cluster>` and `release rollback --env ENV`: blue/green on Route53 that is safe to press.
//! A switch is one change batch of the weighted records, refused unless the target cluster is fully healthy.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};
use crate::ids::{CommitSha, ReleaseId};
use crate::ledger::{Outcome, Record};
use crate::pipeline::{Cluster, Environment, Pipeline};
use crate::ports::{tags, Cloud, HealthState, RecordChange, WeightedAlias};
use crate::promote::{self, Hooks, LockGuard, PromoteOptions};

#[derive(Clone, Debug, Serialize)]
pub struct SwitchReport {
    pub release_id: String,
    pub env: String,
    pub cluster: String,
    /// Weights per cluster before and after.
    pub from: BTreeMap<String, u8>,
    pub to: BTreeMap<String, u8>,
    /// The commit the target cluster runs.
    pub commit: Option<String>,
    pub changed: bool,
    pub forced: bool,
    pub planned: bool,
    /// What the pre-flight found wrong (empty when the target is fully healthy).
    pub problems: Vec<String>,
    pub seconds: f64,
}

/// Why a cluster is not ready for traffic, if it is not: count instances running one commit, all healthy.
pub async fn readiness(cloud: &Cloud, pipeline: &Pipeline, env: &Environment, cluster: &Cluster) -> Result<(Option<String>, Vec<String>)> {
    let all = cloud.fleet.app_instances(&pipeline.app).await?;
    let mine: Vec<_> = all
        .iter()
        .filter(|i| {
            i.tags.get(tags::ENV).map(String::as_str) == Some(env.name.as_str())
                && i.tags.get(tags::CLUSTER).map(String::as_str) == Some(cluster.name.as_str())
        })
        .collect();
    let health = cloud.balancer.health(&cluster.target).await?;
    let mut problems = Vec::new();
    if mine.is_empty() {
        problems.push(format!("cluster {} has no instances; promote a commit to it first", cluster.name));
        return Ok((None, problems));
    }
    let commits: BTreeSet<&str> = mine.iter().filter_map(|i| i.tags.get(tags::COMMIT).map(String::as_str)).collect();
    if commits.len() > 1 {
        let short: Vec<&str> = commits.iter().map(|c| &c[..12.min(c.len())]).collect();
        problems.push(format!("cluster {} runs several commits ({})", cluster.name, short.join(", ")));
    }
    let running = mine.iter().filter(|i| i.state == "running").count();
    if running != cluster.count as usize {
        problems.push(format!("{running} of {} instances running", cluster.count));
    }
    for i in &mine {
        match health.iter().find(|h| h.id == i.id) {
            Some(h) if h.state == HealthState::Healthy => {}
            Some(h) => problems.push(format!(
                "{} is {:?} in {}{}",
                i.id,
                h.state,
                cluster.target,
                h.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
            )),
            None => problems.push(format!("{} ({}) is not registered in {}", i.id, i.state, cluster.target)),
        }
    }
    let commit = (commits.len() == 1).then(|| commits.iter().next().map(|c| c.to_string())).flatten();
    Ok((commit, problems))
}

/// The weights after sending `weight` percent to `target` (100 when not given); the rest goes to the cluster that
/// was live.
pub fn new_weights(env: &Environment, current: &BTreeMap<String, u8>, target: &str, weight: Option<u8>) -> BTreeMap<String, u8> {
    let w = weight.unwrap_or(100);
    let previous = current
        .iter()
        .filter(|(c, v)| c.as_str() != target && **v > 0)
        .max_by_key(|(_, v)| **v)
        .map(|(c, _)| c.clone());
    env.clusters
        .iter()
        .map(|c| {
            let name = c.name.to_string();
            let v = if name == target {
                w
            } else if Some(&name) == previous.as_ref() {
                100 - w
            } else {
                0
            };
            (name, v)
        })
        .collect()
}

pub struct SwitchOptions {
    pub weight: Option<u8>,
    pub force: bool,
    pub plan: bool,
    /// `switch`, or `rollback` when a rollback switches back.
    pub action: &'static str,
}

pub async fn switch(cloud: &Cloud, pipeline: &Pipeline, cluster_name: &str, opts: &SwitchOptions, hooks: &Hooks<'_>) -> Result<SwitchReport> {
    let started = cloud.clock.now();
    let (env, cluster) = pipeline.cluster(cluster_name)?;
    let Some(dns) = &env.dns else {
        return Err(Error::input(format!(
            "env {} has no dns, so there is nothing to switch; promote to it instead (`release promote <sha> --env {}`)",
            env.name, env.name
        )));
    };
    if opts.weight.is_some_and(|w| w > 100) {
        return Err(Error::input("--weight is a percentage: give 0 to 100"));
    }
    let zone = cloud.dns.find_zone(&dns.zone).await?.ok_or_else(|| {
        Error::not_found(format!("hosted zone {} does not exist; run `release provision --env {}`", dns.zone, env.name))
    })?;
    let records = cloud.dns.records(&zone, &dns.record).await?;
    let current: BTreeMap<String, u8> = records.weighted.iter().map(|r| (r.set_identifier.clone(), r.weight)).collect();
    let target = new_weights(env, &current, cluster_name, opts.weight);
    let mut report = SwitchReport {
        release_id: String::new(),
        env: env.name.to_string(),
        cluster: cluster.name.to_string(),
        from: current.clone(),
        to: target.clone(),
        commit: None,
        changed: false,
        forced: opts.force,
        planned: opts.plan,
        problems: Vec::new(),
        seconds: 0.0,
    };
    let missing: Vec<&str> =
        env.clusters.iter().map(|c| c.name.as_str()).filter(|c| !records.weighted.iter().any(|r| r.set_identifier == *c)).collect();
    if !missing.is_empty() {
        return Err(Error::not_found(format!(
            "{} has no weighted record for {}; run `release provision --env {}`",
            dns.record,
            missing.join(", "),
            env.name
        )));
    }
    settle_unfinished(cloud, pipeline, env, &current, hooks).await?;
    if target == current {
        return Ok(report);
    }
    let (commit, problems) = readiness(cloud, pipeline, env, cluster).await?;
    report.commit = commit.clone();
    report.problems = problems.clone();
    if !problems.is_empty() && !opts.force && target.get(cluster_name).copied().unwrap_or(0) > 0 {
        return Err(Error::new(
            ErrorKind::Refused,
            format!("cluster {} is not ready for traffic: {}; nothing was changed (--force to switch anyway)", cluster.name, problems.join("; ")),
        ));
    }
    if opts.plan {
        return Ok(report);
    }

    let release_id = ReleaseId::new(started, hooks.entropy).to_string();
    report.release_id = release_id.clone();
    let lock = LockGuard::acquire(cloud, pipeline, env, &hooks.actor, &release_id).await?;
    (hooks.checkpoint)("locked")?;
    let previous = current.iter().filter(|(c, w)| **w > 0 && c.as_str() != cluster_name).max_by_key(|(_, w)| **w).map(|(c, _)| c.clone());
    let previous_commit = match &previous {
        Some(p) => match pipeline.cluster(p) {
            Ok((_, pc)) => readiness(cloud, pipeline, env, pc).await?.0,
            Err(_) => None,
        },
        None => None,
    };
    let mut record = Record {
        app: pipeline.app.clone(),
        env: env.name.clone(),
        release_id,
        action: opts.action.to_owned(),
        cluster: Some(cluster.name.to_string()),
        commit: commit.clone(),
        ami: None,
        from: Some(describe(&current)),
        to: Some(describe(&target)),
        actor: hooks.actor.name.clone(),
        caller: hooks.actor.caller.clone(),
        host: hooks.actor.host.clone(),
        started,
        finished: None,
        outcome: Outcome::Started,
        detail: (!problems.is_empty()).then(|| format!("forced past: {}", problems.join("; "))),
        config_hash: None,
        new_instances: Vec::new(),
        retired_instances: Vec::new(),
        seconds: BTreeMap::new(),
        forced: opts.force,
        weight: Some(target.get(cluster_name).copied().unwrap_or(0)),
        previous_commit,
    };
    let result = async {
        cloud.ledger.put_record(&pipeline.ledger_table, &record).await?;
        (hooks.checkpoint)("recorded")?;
        let changes: Vec<RecordChange> = records
            .weighted
            .iter()
            .filter(|r| target.contains_key(&r.set_identifier))
            .map(|r| RecordChange::Upsert(WeightedAlias { weight: target[&r.set_identifier], ..r.clone() }))
            .collect();
        (hooks.progress)(&format!("route53: one change batch for {}: {} -> {}; waiting until INSYNC", dns.record, describe(&current), describe(&target)));
        cloud.dns.apply(&zone, &changes, &format!("release {} {} {}", opts.action, pipeline.app, cluster.name)).await?;
        (hooks.checkpoint)("changed")?;
        Ok::<(), Error>(())
    }
    .await;
    let finished = cloud.clock.now();
    record.finished = Some(finished);
    record.seconds.insert("total".into(), finished.since(started).as_secs_f64());
    match result {
        Ok(()) => {
            record.outcome = Outcome::Succeeded;
            cloud.ledger.put_record(&pipeline.ledger_table, &record).await?;
            lock.release().await?;
            report.changed = true;
            report.seconds = finished.since(started).as_secs_f64();
            Ok(report)
        }
        Err(e) if e.kind() == ErrorKind::Crash => Err(e),
        Err(e) => {
            record.outcome = Outcome::Failed;
            record.detail = Some(e.message().to_owned());
            let saved = cloud.ledger.put_record(&pipeline.ledger_table, &record).await;
            lock.release().await?;
            saved?;
            Err(e.context(format!("switching {} to {}", dns.record, cluster.name)))
        }
    }
}

/// Switches whose process died leave `started` records. The weights say how each ended: applied (its `to` is what
/// Route53 holds now) or not. Either way the record is closed, under the lock, so the ledger tells the story.
async fn settle_unfinished(cloud: &Cloud, pipeline: &Pipeline, env: &Environment, current: &BTreeMap<String, u8>, hooks: &Hooks<'_>) -> Result<()> {
    let records = cloud.ledger.records(&pipeline.ledger_table, &pipeline.app, &env.name, 50).await?;
    let stale: Vec<&Record> =
        records.iter().filter(|r| r.outcome == Outcome::Started && matches!(r.action.as_str(), "switch" | "rollback")).collect();
    if stale.is_empty() {
        return Ok(());
    }
    let id = ReleaseId::new(cloud.clock.now(), hooks.entropy).to_string();
    let lock = LockGuard::acquire(cloud, pipeline, env, &hooks.actor, &id).await?;
    let now_weights = describe(current);
    for r in stale {
        let mut r = r.clone();
        let applied = r.to.as_deref() == Some(now_weights.as_str());
        r.outcome = if applied { Outcome::Succeeded } else { Outcome::Abandoned };
        r.finished = Some(cloud.clock.now());
        r.detail = Some(if applied {
            "its process died after Route53 took the change; closed by a later run".into()
        } else {
            "its process died before Route53 took the change; closed by a later run".into()
        });
        cloud.ledger.put_record(&pipeline.ledger_table, &r).await?;
    }
    lock.release().await
}

fn describe(weights: &BTreeMap<String, u8>) -> String {
    weights.iter().map(|(c, w)| format!("{c}={w}")).collect::<Vec<_>>().join(",")
}

#[derive(Clone, Debug, Serialize)]
pub struct RollbackReport {
    pub env: String,
    /// `switch-back`, or `promote-then-switch`, or `promote` (environments without dns).
    pub path: String,
    pub commit: String,
    pub cluster: String,
    pub promote: Option<promote::PromoteReport>,
    pub switch: Option<SwitchReport>,
}

/// Back to the previous live release of `env`, as the ledger tells it.
pub async fn rollback(cloud: &Cloud, pipeline: &Pipeline, env: &Environment, hooks: &Hooks<'_>, promote_opts: &PromoteOptions) -> Result<RollbackReport> {
    let records = cloud.ledger.records(&pipeline.ledger_table, &pipeline.app, &env.name, 200).await?;
    let nothing = || Error::not_found(format!("the ledger of env {} holds no earlier release to roll back to", env.name));
    if env.dns.is_none() {
        // Replaced in place: the commit before the newest successful promote.
        let last = records.iter().find(|r| r.action == "promote" && r.outcome == Outcome::Succeeded).ok_or_else(nothing)?;
        let previous = last.from.clone().ok_or_else(nothing)?;
        let sha = CommitSha::parse(&previous)?;
        (hooks.progress)(&format!("rolling {} back to {} (it ran before {})", env.name, sha.short(), last.release_id));
        let report = promote::promote(cloud, pipeline, env, &sha, promote_opts, hooks).await?;
        return Ok(RollbackReport {
            env: env.name.to_string(),
            path: "promote".into(),
            commit: sha.to_string(),
            cluster: report.cluster.clone(),
            promote: Some(report),
            switch: None,
        });
    }
    // Blue/green: the cluster that was live before the newest successful switch, and what it ran then.
    let weights = promote::live_weights(cloud, env).await?;
    let live = weights.iter().filter(|(_, w)| **w > 0).max_by_key(|(_, w)| **w).map(|(c, _)| c.clone()).ok_or_else(nothing)?;
    let last = records
        .iter()
        .find(|r| matches!(r.action.as_str(), "switch" | "rollback") && r.outcome == Outcome::Succeeded && r.cluster.as_deref() == Some(live.as_str()))
        .ok_or_else(nothing)?;
    let from = last.from.as_deref().unwrap_or("");
    let previous_cluster = from
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(c, w)| *c != live && *w != "0")
        .map(|(c, _)| c.to_owned())
        .next()
        .ok_or_else(nothing)?;
    let previous_commit = last.previous_commit.clone().ok_or_else(nothing)?;
    let sha = CommitSha::parse(&previous_commit)?;
    let (_, cluster) = pipeline.cluster(&previous_cluster)?;
    let (runs, problems) = readiness(cloud, pipeline, env, cluster).await?;
    let switch_opts = SwitchOptions { weight: None, force: false, plan: false, action: "rollback" };
    if runs.as_deref() == Some(sha.as_str()) && problems.is_empty() {
        (hooks.progress)(&format!("{} still runs {} and is healthy: switching back", previous_cluster, sha.short()));
        let s = switch(cloud, pipeline, &previous_cluster, &switch_opts, hooks).await?;
        return Ok(RollbackReport {
            env: env.name.to_string(),
            path: "switch-back".into(),
            commit: sha.to_string(),
            cluster: previous_cluster,
            promote: None,
            switch: Some(s),
        });
    }
    (hooks.progress)(&format!(
        "{} no longer runs {} healthy ({}): promoting {} to it, then switching",
        previous_cluster,
        sha.short(),
        if problems.is_empty() { format!("it runs {}", runs.as_deref().map_or("?", |r| &r[..12.min(r.len())])) } else { problems.join("; ") },
        sha.short()
    ));
    let opts = PromoteOptions { cluster: Some(previous_cluster.clone()), ..promote_opts.clone() };
    let p = promote::promote(cloud, pipeline, env, &sha, &opts, hooks).await?;
    let s = switch(cloud, pipeline, &previous_cluster, &switch_opts, hooks).await?;
    Ok(RollbackReport {
        env: env.name.to_string(),
        path: "promote-then-switch".into(),
        commit: sha.to_string(),
        cluster: previous_cluster,
        promote: Some(p),
        switch: Some(s),
    })
}
