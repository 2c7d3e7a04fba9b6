//! Observing an environment: the live name's weights, a cluster's instances and load balancer membership, and
//! strays. Shared by promote, switch, rollback and status, so they all see the world the same way.
//!
//! **The load balancer is the truth** of what serves: tags say what an instance was launched as, membership says
//! what takes traffic. A *stray* is an instance in a cluster's load balancer that is not one of that cluster's
//! instances (another cluster's after a rename, another environment's or app's, or one registered by hand), or,
//! when no operation is under way, one of the cluster's from an older release than its newest.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::error::{Cause, Error, NotFound, Result};
use crate::model::ids::{ClusterName, InstanceId};
use crate::model::pipeline::{Cluster, Environment};
use crate::model::ids::{short_sha, CommitSha};
use crate::model::ledger::LiveRelease;
use crate::ports::{tags, Cloud, HealthState, Instance, RecordSet, TargetHealth, ZoneId};
use crate::model::weights::Weights;

/// The live name of a blue/green environment as Route53 holds it.
#[derive(Clone, Debug)]
pub struct LiveName {
    /// The hosted zone.
    pub zone: ZoneId,
    /// Its records of the live name.
    pub records: RecordSet,
    /// The weights of the records that belong to this environment's clusters.
    pub weights: Weights,
}

/// The live name's zone and records, or a not-found error saying to provision.
pub async fn live_name(cloud: &Cloud, env: &Environment) -> Result<Option<LiveName>> {
    let Some(dns) = env.dns() else { return Ok(None) };
    let zone = cloud.dns.find_zone(&dns.zone).await?.ok_or_else(|| {
        Error::from(NotFound::Zone { zone: dns.zone.to_string(), env: env.name.to_string() }).with_cause(Cause::Missing)
    })?;
    let records = cloud.dns.records(&zone, &dns.record).await?;
    let mut weights = Vec::new();
    for c in env.clusters() {
        if let Some(r) = records.weighted.iter().find(|r| r.set_identifier == c.name.as_str()) {
            weights.push((c.name.clone(), r.weight));
        }
    }
    Ok(Some(LiveName { zone, records, weights: Weights::new(weights) }))
}

/// Refuses when the live name lacks a record for a cluster of the file.
pub fn require_records(env: &Environment, live: &LiveName) -> Result<()> {
    let missing: Vec<&str> = env.clusters().iter().filter(|c| !live.weights.has(&c.name)).map(|c| c.name.as_str()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let record = env.dns().map(|d| d.record.as_str()).unwrap_or("");
    Err(NotFound::Records { record: record.to_owned(), missing: missing.into_iter().map(str::to_owned).collect(), env: env.name.to_string() }.into())
}

/// Instances tagged as this cluster's (this app, environment and cluster), not terminated.
pub fn cluster_instances<'i>(all: &'i [Instance], env: &Environment, cluster: &Cluster) -> Vec<&'i Instance> {
    all.iter().filter(|i| is_of_cluster(i, env, &cluster.name) && i.state != crate::ports::InstanceState::Terminated).collect()
}

fn is_of_cluster(i: &Instance, env: &Environment, cluster: &ClusterName) -> bool {
    i.tags.get(tags::ENV).map(String::as_str) == Some(env.name.as_str())
        && i.tags.get(tags::CLUSTER).map(String::as_str) == Some(cluster.as_str())
}

/// The release id an instance was launched by.
pub fn release_of(i: &Instance) -> &str {
    i.tags.get(tags::RELEASE_ID).map_or("", String::as_str)
}

/// An instance in a cluster's load balancer that is not one of the cluster's (current) instances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stray {
    /// The instance.
    pub id: InstanceId,
    /// Whether it carries this app's tag (then promote retires it; otherwise promote refuses).
    pub this_app: bool,
    /// Its tags, as far as known: app, env, cluster, commit, release.
    pub app: Option<String>,
    /// Its environment tag.
    pub env: Option<String>,
    /// Its cluster tag.
    pub cluster: Option<String>,
    /// Its commit tag.
    pub commit: Option<String>,
    /// Its release tag.
    pub release: Option<String>,
}

impl Stray {
    /// `i-0abc (hello/prod/prod1 3f2a1b2c3d4e)` for messages.
    pub fn describe(&self) -> String {
        let who = match (&self.app, &self.env, &self.cluster) {
            (Some(a), Some(e), Some(c)) => format!("{a}/{e}/{c}"),
            (Some(a), _, _) => format!("app {a}"),
            _ => "untagged".into(),
        };
        let commit = self.commit.as_deref().map(|c| format!(" {}", crate::model::ids::short_sha(c))).unwrap_or_default();
        format!("{} ({who}{commit})", self.id)
    }
}

/// The strays of `cluster` given its load balancer's `members`: members that are not this cluster's instances;
/// with `old_releases`, also this cluster's instances of a release older than its newest. `app_instances` are the
/// app's instances; `others` describes members that are not (another app's, untagged, or terminated) as far as EC2
/// knows them. A stray is `app`'s when it carries the app's tag, whatever its state (one terminated by hand stays
/// registered until someone deregisters it).
pub fn strays(
    app: &crate::model::ids::AppName,
    env: &Environment,
    cluster: &Cluster,
    members: &[InstanceId],
    app_instances: &[Instance],
    others: &[Instance],
    old_releases: bool,
) -> Vec<Stray> {
    let by_id: BTreeMap<&InstanceId, &Instance> = app_instances.iter().chain(others.iter()).map(|i| (&i.id, i)).collect();
    let newest = members
        .iter()
        .filter_map(|m| by_id.get(m))
        .filter(|i| is_of_cluster(i, env, &cluster.name))
        .map(|i| release_of(i))
        .max()
        .map(str::to_owned);
    let app_ids: BTreeSet<&InstanceId> = app_instances.iter().map(|i| &i.id).collect();
    let mut out = Vec::new();
    for m in members {
        let inst = by_id.get(m);
        if inst.is_some_and(|i| is_gone_own(app, env, cluster, i)) {
            continue;
        }
        let mine = inst.is_some_and(|i| is_of_cluster(i, env, &cluster.name) && app_ids.contains(m));
        let stale = mine && old_releases && inst.map(|i| release_of(i).to_owned()) != newest;
        if mine && !stale {
            continue;
        }
        let tag = |k: &str| inst.and_then(|i| i.tags.get(k).cloned());
        out.push(Stray {
            id: m.clone(),
            this_app: app_ids.contains(m) || tag(tags::APP).as_deref() == Some(app.as_str()),
            app: tag(tags::APP),
            env: tag(tags::ENV),
            cluster: tag(tags::CLUSTER),
            commit: tag(tags::COMMIT),
            release: tag(tags::RELEASE_ID),
        });
    }
    out
}

/// The cluster's own instances (this app, environment and cluster) that EC2 terminated, or is terminating, while
/// they are still in its load balancer: not strays (nobody else's instance takes traffic) but lost capacity,
/// terminated outside `release` (by hand?), since `release` deregisters before it terminates.
pub fn terminated(app: &crate::model::ids::AppName, env: &Environment, cluster: &Cluster, members: &[InstanceId], others: &[Instance]) -> Vec<InstanceId> {
    others.iter().filter(|i| members.contains(&i.id) && is_gone_own(app, env, cluster, i)).map(|i| i.id.clone()).collect()
}

fn is_gone_own(app: &crate::model::ids::AppName, env: &Environment, cluster: &Cluster, i: &Instance) -> bool {
    i.state.is_gone()
        && i.tags.get(tags::APP).map(String::as_str) == Some(app.as_str())
        && is_of_cluster(i, env, &cluster.name)
}

/// `i-0abc of this cluster: terminated (by hand?)`, how status and promote name such an instance.
pub fn describe_terminated(id: &InstanceId) -> String {
    format!("{id} of this cluster: terminated (by hand?)")
}

/// Describes the members that are not among the app's instances (one call, only when there are any).
pub async fn describe_others(cloud: &Cloud, members: &[InstanceId], app_instances: &[Instance]) -> Result<Vec<Instance>> {
    let known: BTreeSet<&InstanceId> = app_instances.iter().map(|i| &i.id).collect();
    let others: Vec<InstanceId> = members.iter().filter(|m| !known.contains(m)).cloned().collect();
    if others.is_empty() {
        return Ok(Vec::new());
    }
    cloud.fleet.instances_in(&others, &["pending", "running", "stopping", "stopped", "shutting-down", "terminated"]).await
}

/// A part of a cluster's load balancer that does not exist, as a not-found error saying to provision.
pub fn part_missing(env: &Environment, cluster: &Cluster, part: &crate::ports::LbPart) -> Error {
    Error::from(NotFound::LbPart { part: part.to_string(), cluster: cluster.name.to_string(), env: env.name.to_string() }).with_cause(Cause::Missing)
}

/// The load balancer error of a cluster, reworded with the environment to provision.
pub fn lb_missing(env: &Environment, cluster: &Cluster, e: Error) -> Error {
    if e.is(Cause::Missing) {
        Error::from(NotFound::LbPart { part: cluster.target.to_string(), cluster: cluster.name.to_string(), env: env.name.to_string() }).with_cause(Cause::Missing)
    } else {
        e
    }
}

/// Whether a cluster can take traffic: `count` instances of one commit, running, healthy, nothing stray.
#[derive(Clone, Debug, Serialize)]
pub struct Readiness {
    /// The commit it runs, when it runs exactly one.
    pub commit: Option<CommitSha>,
    /// What is wrong (empty: ready).
    pub problems: Vec<String>,
    /// Strays in its load balancer.
    pub strays: Vec<Stray>,
    /// Healthy instances of the cluster.
    pub healthy: usize,
}

/// Judges a cluster from its tagged instances and its load balancer's health (whose ids are its members).
pub fn readiness(app: &crate::model::ids::AppName, env: &Environment, cluster: &Cluster, app_instances: &[Instance], health: &[TargetHealth], others: &[Instance]) -> Readiness {
    let mine = cluster_instances(app_instances, env, cluster);
    let members: Vec<InstanceId> = health.iter().map(|h| h.id.clone()).collect();
    let strays = strays(app, env, cluster, &members, app_instances, others, true);
    let mut problems = Vec::new();
    if mine.is_empty() {
        problems.push(format!("cluster {} has no instances; promote a commit to it first", cluster.name));
        return Readiness { commit: None, problems, strays, healthy: 0 };
    }
    let commits: BTreeSet<&str> = mine.iter().filter_map(|i| i.tags.get(crate::ports::tags::COMMIT).map(String::as_str)).collect();
    if commits.len() > 1 {
        let short: Vec<&str> = commits.iter().map(|c| short_sha(c)).collect();
        problems.push(format!("cluster {} runs several commits ({})", cluster.name, short.join(", ")));
    }
    let running = mine.iter().filter(|i| i.state == crate::ports::InstanceState::Running).count();
    if running != cluster.count as usize {
        problems.push(format!("{running} of {} instances running", cluster.count));
    }
    let mut healthy = 0;
    for i in &mine {
        match health.iter().find(|h| h.id == i.id) {
            Some(h) if h.state == HealthState::Healthy => healthy += 1,
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
    let commit = if commits.len() == 1 { commits.iter().next().and_then(|c| CommitSha::parse(c).ok()) } else { None };
    Readiness { commit, problems, strays, healthy }
}

/// The commit a cluster runs, from tags, when it runs exactly one.
pub fn commit_of(env: &Environment, cluster: &Cluster, app_instances: &[Instance]) -> Option<CommitSha> {
    let commits: BTreeSet<&str> = cluster_instances(app_instances, env, cluster)
        .iter()
        .filter(|i| i.state == crate::ports::InstanceState::Running)
        .filter_map(|i| i.tags.get(crate::ports::tags::COMMIT).map(String::as_str))
        .collect();
    if commits.len() == 1 {
        commits.iter().next().and_then(|c| CommitSha::parse(c).ok())
    } else {
        None
    }
}

/// What is live now: the primary cluster and the commit it runs.
pub fn previous(env: &Environment, weights: &Weights, instances: &[Instance]) -> Option<LiveRelease> {
    let primary = weights.primary().filter(|p| weights.is_live(p))?;
    let cluster = env.cluster(primary.as_str()).ok()?;
    let commit = commit_of(env, cluster, instances)?;
    Some(LiveRelease { commit, cluster: Some(primary.clone()), release_id: None })
}
