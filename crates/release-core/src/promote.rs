//! `release promote <sha> --env ENV`: launch fresh instances of the commit's AMI, put them behind the cluster's
//! load balancer once every one is healthy, then retire the old ones.
//!
//! Invariants (DESIGN §5), each held here and proved by the tests:
//! - traffic reaches only healthy instances: new instances are registered only once running, and the old ones are
//!   deregistered only after every new one is healthy;
//! - a failure before old capacity is removed deregisters and terminates the new instances: the environment serves
//!   what it served before, and the ledger says failed;
//! - re-running after a crash converges: the unfinished record and its instances (found by tag) are adopted when
//!   they are for the same commit and settings, otherwise cleaned up; no fleet is launched twice;
//! - one environment, one operator: the lock is held from before the first change to after the last.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::{format_duration, Timestamp};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{AmiId, AppName, CommitSha, InstanceId, ReleaseId};
use crate::ledger::{Actor, LockInfo, Outcome, Record};
use crate::pipeline::{Cluster, Environment, Pipeline};
use crate::ports::{tags, Cloud, HealthState, Image, Instance, LaunchSpec, ProgressFn};

/// How long a lock lives without renewal: a dead holder blocks an environment for at most this long.
pub const LOCK_LEASE: Duration = Duration::from_secs(120);

/// The newest complete bake of `commit`.
pub fn find_ami(images: &[Image], commit: &CommitSha) -> Option<Image> {
    images
        .iter()
        .filter(|i| i.is_complete_bake() && i.tags.get(tags::COMMIT).map(String::as_str) == Some(commit.as_str()))
        .max_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)))
        .cloned()
}

/// Weights of the live name per cluster (empty without `dns`).
pub async fn live_weights(cloud: &Cloud, env: &Environment) -> Result<BTreeMap<String, u8>> {
    let Some(dns) = &env.dns else { return Ok(BTreeMap::new()) };
    let zone = cloud.dns.find_zone(&dns.zone).await?.ok_or_else(|| {
        Error::not_found(format!("hosted zone {} does not exist; run `release provision --env {}`", dns.zone, env.name))
    })?;
    let set = cloud.dns.records(&zone, &dns.record).await?;
    Ok(set.weighted.into_iter().map(|r| (r.set_identifier, r.weight)).collect())
}

/// The cluster a promote goes to: the only one, or the idle one of a blue/green environment.
pub fn target_cluster<'e>(env: &'e Environment, weights: &BTreeMap<String, u8>, wanted: Option<&str>) -> Result<&'e Cluster> {
    if env.dns.is_none() {
        let only = &env.clusters[0];
        if let Some(w) = wanted.filter(|w| *w != only.name.as_str()) {
            return Err(Error::not_found(format!("env {} has one cluster, {}, not {w}", env.name, only.name)));
        }
        return Ok(only);
    }
    let live: Vec<&str> = weights.iter().filter(|(_, w)| **w > 0).map(|(c, _)| c.as_str()).collect();
    if let Some(w) = wanted {
        let c = env.clusters.iter().find(|c| c.name.as_str() == w).ok_or_else(|| {
            let names: Vec<&str> = env.clusters.iter().map(|c| c.name.as_str()).collect();
            Error::not_found(format!("env {} has no cluster {w}; its clusters: {}", env.name, names.join(", ")))
        })?;
        if live.contains(&w) {
            return Err(Error::new(
                ErrorKind::Refused,
                format!("cluster {w} is live (it takes traffic of {}); promote to an idle cluster, or switch away from {w} first", env.dns.as_ref().map_or("", |d| d.record.as_str())),
            ));
        }
        return Ok(c);
    }
    let idle: Vec<&Cluster> = env.clusters.iter().filter(|c| !live.contains(&c.name.as_str())).collect();
    match idle.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::new(
            ErrorKind::Refused,
            format!("every cluster of env {} takes live traffic; switch one to weight 0 first", env.name),
        )),
        several => {
            let names: Vec<&str> = several.iter().map(|c| c.name.as_str()).collect();
            Err(Error::input(format!("env {} has several idle clusters ({}); pass --cluster", env.name, names.join(", "))))
        }
    }
}

/// A hash of the environment's resolved settings for one cluster: what user data and launch settings come from.
pub fn config_hash(pipeline: &Pipeline, env: &Environment, cluster: &Cluster) -> String {
    let d = &cluster.deploy;
    let mut text = format!(
        "release config v1\napp {}\nenv {}\ncluster {}\ntarget {:?}\ncount {}\ntype {}\nport {}\nhealth {}\nsubnets {:?}\nsgs {:?}\n",
        pipeline.app, env.name, cluster.name, cluster.target, cluster.count, d.instance_type, d.port, d.health_path, d.subnets, d.security_groups
    );
    for (k, v) in &env.vars {
        text.push_str(&format!("var {k}={v}\n"));
    }
    hex::encode(Sha256::digest(text.as_bytes()))[..16].to_owned()
}

/// The boot script: writes the environment's variables to `/etc/<app>/env` and restarts the service.
/// `ssm:` values are fetched on the instance at boot; their values never appear here.
pub fn user_data(pipeline: &Pipeline, env: &Environment, cluster: &Cluster, commit: &CommitSha, release: &ReleaseId, region: &str) -> String {
    let app = pipeline.app.as_str();
    let mut plain = BTreeMap::new();
    plain.insert("RELEASE_APP".to_owned(), app.to_owned());
    plain.insert("RELEASE_ENV".to_owned(), env.name.to_string());
    plain.insert("RELEASE_CLUSTER".to_owned(), cluster.name.to_string());
    plain.insert("RELEASE_COMMIT".to_owned(), commit.to_string());
    plain.insert("RELEASE_ID".to_owned(), release.to_string());
    plain.insert("PORT".to_owned(), cluster.deploy.port.to_string());
    let mut ssm = Vec::new();
    for (k, v) in &env.vars {
        match v.strip_prefix("ssm:") {
            Some(path) => ssm.push((k.clone(), path.to_owned())),
            None => {
                plain.insert(k.clone(), v.clone());
            }
        }
    }
    let mut s = String::from("#!/bin/bash\n# Written by release: the environment of this instance, then a restart of the service.\nset -euo pipefail\n");
    s.push_str(&format!("install -d -m 0755 /etc/{app}\numask 077\ntmp=/etc/{app}/env.tmp\ncat > \"$tmp\" <<'RELEASE_ENV_EOF'\n"));
    for (k, v) in &plain {
        s.push_str(&format!("{k}=\"{}\"\n", v.replace('\\', "\\\\").replace('"', "\\\"")));
    }
    s.push_str("RELEASE_ENV_EOF\n");
    for (k, path) in &ssm {
        s.push_str(&format!(
            "v=$(aws ssm get-parameter --region {region} --with-decryption --name '{path}' --query Parameter.Value --output text)\n\
             printf '%s=\"%s\"\\n' '{k}' \"$(printf '%s' \"$v\" | sed 's/[\\\\\"]/\\\\&/g')\" >> \"$tmp\"\n"
        ));
    }
    s.push_str(&format!("mv \"$tmp\" /etc/{app}/env\nsystemctl restart {app}.service || true\n"));
    s
}

/// What a promote will do or did.
#[derive(Clone, Debug, Serialize)]
pub struct PromoteReport {
    pub release_id: String,
    pub app: AppName,
    pub env: String,
    pub cluster: String,
    pub commit: CommitSha,
    pub ami: AmiId,
    pub from_commit: Option<String>,
    /// `planned`, `noop`, `succeeded`.
    pub outcome: String,
    pub new_instances: Vec<InstanceId>,
    pub retired_instances: Vec<InstanceId>,
    /// Instances of an earlier unfinished release that this run adopted or cleaned up.
    pub adopted: Vec<InstanceId>,
    pub cleaned: Vec<InstanceId>,
    pub launches: Vec<PlannedLaunch>,
    pub seconds: BTreeMap<String, f64>,
    /// AWS calls made by the waits (running, healthy): bounded by timeout / poll interval, not by the fleet.
    pub polls: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct PlannedLaunch {
    pub subnet: String,
    pub availability_zone: String,
    pub count: u32,
}

#[derive(Clone, Debug)]
pub struct PromoteOptions {
    pub cluster: Option<String>,
    pub plan: bool,
    pub batch: Option<u32>,
    pub poll: Duration,
    pub region: String,
}

/// What the engine needs besides the cloud: who acts, how to report, when to stop, where a test may crash it.
pub struct Hooks<'a> {
    pub actor: Actor,
    pub progress: &'a ProgressFn,
    /// Set by Ctrl-C / SIGTERM: roll back at the next poll.
    pub cancelled: Arc<AtomicBool>,
    /// Called at each step boundary with the step's name; an error aborts right there, as a crash would.
    pub checkpoint: &'a (dyn Fn(&str) -> Result<()> + Send + Sync),
    /// Random bits for release ids.
    pub entropy: u32,
}

/// Holds the environment's lock and renews it while work goes on.
pub struct LockGuard<'c> {
    cloud: &'c Cloud,
    table: String,
    pub info: LockInfo,
}

impl<'c> LockGuard<'c> {
    pub async fn acquire(cloud: &'c Cloud, pipeline: &Pipeline, env: &Environment, actor: &Actor, release_id: &str) -> Result<Self> {
        let now = cloud.clock.now();
        let info = LockInfo {
            app: pipeline.app.clone(),
            env: env.name.clone(),
            holder: actor.name.clone(),
            release_id: release_id.to_owned(),
            host: actor.host.clone(),
            acquired: now,
            expires: now.add(LOCK_LEASE),
        };
        if let Some(held) = cloud.lock.acquire(&pipeline.ledger_table, &info, now).await? {
            return Err(Error::new(
                ErrorKind::LockHeld,
                format!(
                    "environment {} is locked by {} since {} (release {}, host {}); wait for it, or `release unlock --env {}` if it is stale",
                    env.name, held.holder, held.acquired, held.release_id, held.host, env.name
                ),
            ));
        }
        Ok(Self { cloud, table: pipeline.ledger_table.clone(), info })
    }

    /// Renews when half the lease is gone; fails when someone broke the lock meanwhile.
    pub async fn keep(&mut self) -> Result<()> {
        let now = self.cloud.clock.now();
        if now.since(self.info.acquired) < LOCK_LEASE / 2 && now < self.info.expires {
            return Ok(());
        }
        let renewed = LockInfo { acquired: now, expires: now.add(LOCK_LEASE), ..self.info.clone() };
        if !self.cloud.lock.renew(&self.table, &renewed).await? {
            return Err(Error::new(ErrorKind::LockHeld, format!("lost the lock of env {} (broken by someone else); stopping", self.info.env)));
        }
        self.info = renewed;
        Ok(())
    }

    pub async fn release(self) -> Result<()> {
        self.cloud.lock.release(&self.table, &self.info).await
    }
}

/// Instances of one cluster of one environment.
fn cluster_instances<'i>(all: &'i [Instance], env: &Environment, cluster: &Cluster) -> Vec<&'i Instance> {
    all.iter()
        .filter(|i| {
            i.tags.get(tags::ENV).map(String::as_str) == Some(env.name.as_str())
                && i.tags.get(tags::CLUSTER).map(String::as_str) == Some(cluster.name.as_str())
        })
        .collect()
}

fn release_of(i: &Instance) -> &str {
    i.tags.get(tags::RELEASE_ID).map_or("", String::as_str)
}

/// Splits `count` over the subnets, spreading across zones.
pub fn spread(count: u32, subnets: &[crate::ports::Subnet]) -> Vec<PlannedLaunch> {
    let n = subnets.len().max(1) as u32;
    subnets
        .iter()
        .enumerate()
        .map(|(i, s)| PlannedLaunch {
            subnet: s.id.clone(),
            availability_zone: s.availability_zone.clone(),
            count: count / n + u32::from((i as u32) < count % n),
        })
        .filter(|p| p.count > 0)
        .collect()
}

struct Run<'a, 'c> {
    cloud: &'c Cloud,
    pipeline: &'a Pipeline,
    env: &'a Environment,
    cluster: &'a Cluster,
    hooks: &'a Hooks<'a>,
    opts: &'a PromoteOptions,
    lock: LockGuard<'c>,
    record: Record,
    ami: AmiId,
    commit: CommitSha,
    config: String,
    started: Timestamp,
    phase_start: Timestamp,
    seconds: BTreeMap<String, f64>,
    /// Set once the round under way has started retiring old capacity: from then on its new instances are the
    /// ones serving, and a failure must not remove them.
    retiring: bool,
    /// Who is registered with the cluster's load balancer: read once, then kept up to date with what we do.
    members: BTreeSet<InstanceId>,
    polls: u32,
}

impl Run<'_, '_> {
    fn lap(&mut self, phase: &str) {
        let now = self.cloud.clock.now();
        *self.seconds.entry(phase.to_owned()).or_default() += now.since(self.phase_start).as_secs_f64();
        self.phase_start = now;
    }

    fn step(&self, name: &str) -> Result<()> {
        (self.hooks.checkpoint)(name)
    }

    fn check_cancelled(&self) -> Result<()> {
        if self.hooks.cancelled.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Interrupted, "interrupted"));
        }
        Ok(())
    }

    async fn launch(&mut self, count: u32) -> Result<Vec<InstanceId>> {
        let network = self.cloud.fleet.network(&self.cluster.deploy.subnets).await?;
        let plan = spread(count, &network.subnets);
        let user_data = user_data(self.pipeline, self.env, self.cluster, &self.commit, &ReleaseId::from_string(self.record.release_id.clone()), &self.opts.region);
        let tags = vec![
            (tags::APP.to_owned(), self.pipeline.app.to_string()),
            (tags::COMMIT.to_owned(), self.commit.to_string()),
            (tags::ENV.to_owned(), self.env.name.to_string()),
            (tags::CLUSTER.to_owned(), self.cluster.name.to_string()),
            (tags::RELEASE_ID.to_owned(), self.record.release_id.clone()),
            (tags::CONFIG.to_owned(), self.config.clone()),
            (tags::BAKE_KEY.to_owned(), String::new()),
            ("Name".to_owned(), format!("{}-{}-{}", self.pipeline.app, self.cluster.name, self.commit.short())),
        ];
        let tags: Vec<(String, String)> = tags.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        (self.hooks.progress)(&format!("launching {count} instance(s) of {} in {} subnet(s)", self.ami, plan.len()));
        let mut ids = Vec::new();
        let round = self.record.new_instances.len();
        for p in &plan {
            let spec = LaunchSpec {
                ami: self.ami.clone(),
                instance_type: self.cluster.deploy.instance_type.clone(),
                subnet: p.subnet.clone(),
                security_groups: self.cluster.deploy.security_groups.clone(),
                count: p.count,
                user_data: user_data.clone(),
                tags: tags.clone(),
                client_token: format!("{}-{}-{round}", self.record.release_id, p.subnet),
            };
            ids.extend(self.cloud.fleet.launch(&spec).await?);
        }
        Ok(ids)
    }

    /// Polls until every instance in `ids` is running. Each poll asks, by id, which of them are not running (yet):
    /// an empty answer means done, and neither the question nor the answer grows with the rest of the fleet.
    async fn wait_running(&mut self, ids: &[InstanceId]) -> Result<()> {
        const NOT_RUNNING: &[&str] = &["pending", "stopping", "stopped", "shutting-down", "terminated"];
        let deadline = self.cloud.clock.now().add(self.cluster.deploy.health_timeout);
        let mut last = usize::MAX;
        loop {
            self.check_cancelled()?;
            self.lock.keep().await?;
            self.polls += 1;
            let waiting = self.cloud.fleet.instances_in(ids, NOT_RUNNING).await?;
            if let Some(bad) = waiting.iter().find(|i| i.state != "pending") {
                return Err(Error::new(ErrorKind::DeployFailed, format!("instance {} is {} instead of running", bad.id, bad.state)));
            }
            let running = ids.len() - waiting.len();
            if waiting.is_empty() {
                return Ok(());
            }
            if running != last {
                (self.hooks.progress)(&format!("running {running}/{}", ids.len()));
                last = running;
            }
            if self.cloud.clock.now() >= deadline {
                return Err(Error::new(
                    ErrorKind::DeployFailed,
                    format!("only {running} of {} instances running after {}", ids.len(), format_duration(self.cluster.deploy.health_timeout)),
                ));
            }
            self.cloud.clock.sleep(self.opts.poll).await;
        }
    }

    /// Polls until every instance in `ids` is healthy in the load balancer, up to `health_timeout`.
    async fn wait_healthy(&mut self, ids: &[InstanceId]) -> Result<()> {
        let deadline = self.cloud.clock.now().add(self.cluster.deploy.health_timeout);
        let want: BTreeSet<&InstanceId> = ids.iter().collect();
        let mut last = usize::MAX;
        loop {
            self.check_cancelled()?;
            self.lock.keep().await?;
            self.polls += 1;
            let health = self.cloud.balancer.health(&self.cluster.target).await?;
            let healthy: Vec<&InstanceId> =
                health.iter().filter(|h| want.contains(&h.id) && h.state == HealthState::Healthy).map(|h| &h.id).collect();
            if healthy.len() == want.len() {
                (self.hooks.progress)(&format!("healthy {}/{}", healthy.len(), want.len()));
                return Ok(());
            }
            if healthy.len() != last {
                (self.hooks.progress)(&format!("healthy {}/{}", healthy.len(), want.len()));
                last = healthy.len();
            }
            if self.cloud.clock.now() >= deadline {
                let sick: Vec<String> = health
                    .iter()
                    .filter(|h| want.contains(&h.id) && h.state != HealthState::Healthy)
                    .take(5)
                    .map(|h| format!("{} {:?}{}", h.id, h.state, h.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()))
                    .collect();
                return Err(Error::new(
                    ErrorKind::DeployFailed,
                    format!(
                        "only {} of {} new instances healthy in {} after {}: {}",
                        healthy.len(),
                        want.len(),
                        self.cluster.target,
                        format_duration(self.cluster.deploy.health_timeout),
                        sick.join(", ")
                    ),
                ));
            }
            self.cloud.clock.sleep(self.opts.poll).await;
        }
    }

    /// Deregisters, drains and terminates `ids`.
    async fn retire(&mut self, ids: &[InstanceId], registered: bool) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        if registered {
            self.cloud.balancer.deregister(&self.cluster.target, ids).await?;
            for id in ids {
                self.members.remove(id);
            }
            self.step("deregistered-old")?;
            if !self.cluster.deploy.drain.is_zero() {
                (self.hooks.progress)(&format!("draining {} instance(s) for {}", ids.len(), format_duration(self.cluster.deploy.drain)));
                self.cloud.clock.sleep(self.cluster.deploy.drain).await;
            }
            self.step("drained")?;
        }
        self.cloud.fleet.terminate(ids).await?;
        (self.hooks.progress)(&format!("terminated {} old instance(s)", ids.len()));
        self.step("terminated-old")
    }

    async fn save(&mut self) -> Result<()> {
        self.record.seconds = self.seconds.clone();
        self.cloud.ledger.put_record(&self.pipeline.ledger_table, &self.record).await
    }
}

/// Runs a promote. `sha` must be baked already.
pub async fn promote(cloud: &Cloud, pipeline: &Pipeline, env: &Environment, commit: &CommitSha, opts: &PromoteOptions, hooks: &Hooks<'_>) -> Result<PromoteReport> {
    let started = cloud.clock.now();
    let images = cloud.images.app_images(&pipeline.app).await?;
    let ami = find_ami(&images, commit).ok_or_else(|| {
        Error::not_found(format!("no AMI for {}; run `release bake {}`", commit.short(), commit))
    })?;
    let weights = live_weights(cloud, env).await?;
    let cluster = target_cluster(env, &weights, opts.cluster.as_deref())?;
    let config = config_hash(pipeline, env, cluster);
    let all = cloud.fleet.app_instances(&pipeline.app).await?;
    let current = cluster_instances(&all, env, cluster);
    let from_commit = current.iter().find_map(|i| i.tags.get(tags::COMMIT)).cloned();
    let mut report = PromoteReport {
        release_id: String::new(),
        app: pipeline.app.clone(),
        env: env.name.to_string(),
        cluster: cluster.name.to_string(),
        commit: commit.clone(),
        ami: ami.id.clone(),
        from_commit: from_commit.clone(),
        outcome: String::new(),
        new_instances: Vec::new(),
        retired_instances: Vec::new(),
        adopted: Vec::new(),
        cleaned: Vec::new(),
        launches: Vec::new(),
        seconds: BTreeMap::new(),
        polls: 0,
    };

    // Health is asked only when the tags already say converged: it is the costly read.
    let tags_converged = current.len() == cluster.count as usize
        && current.iter().all(|i| {
            i.tags.get(tags::COMMIT) == Some(&commit.to_string()) && i.tags.get(tags::CONFIG) == Some(&config) && i.state == "running"
        })
        && current.iter().map(|i| release_of(i)).collect::<BTreeSet<_>>().len() == 1;
    let converged = tags_converged && {
        let health = cloud.balancer.health(&cluster.target).await?;
        let healthy: BTreeSet<&InstanceId> = health.iter().filter(|h| h.state == HealthState::Healthy).map(|h| &h.id).collect();
        current.iter().all(|i| healthy.contains(&i.id))
    };
    if converged {
        report.outcome = "noop".into();
        report.release_id = release_of(current[0]).to_owned();
        // A run that died after retiring the old fleet left its record unfinished: the fleet it built is the one
        // serving, so the record is closed now.
        let records = cloud.ledger.records(&pipeline.ledger_table, &pipeline.app, &env.name, 50).await?;
        if let Some(r) = records.iter().find(|r| r.release_id == report.release_id && r.outcome == Outcome::Started) {
            let lock = LockGuard::acquire(cloud, pipeline, env, &hooks.actor, &report.release_id).await?;
            let mut r = r.clone();
            r.outcome = Outcome::Succeeded;
            r.finished = Some(cloud.clock.now());
            r.detail = Some("completed by a re-run: the new fleet was serving and the old one retired".into());
            r.new_instances = current.iter().map(|i| i.id.to_string()).collect();
            cloud.ledger.put_record(&pipeline.ledger_table, &r).await?;
            lock.release().await?;
            report.outcome = "completed".into();
        }
        return Ok(report);
    }

    if opts.plan {
        let network = cloud.fleet.network(&cluster.deploy.subnets).await?;
        report.outcome = "planned".into();
        report.launches = spread(cluster.count, &network.subnets);
        report.retired_instances = current.iter().map(|i| i.id.clone()).collect();
        return Ok(report);
    }

    let release_id = ReleaseId::new(started, hooks.entropy).to_string();
    let lock = LockGuard::acquire(cloud, pipeline, env, &hooks.actor, &release_id).await?;
    (hooks.checkpoint)("locked")?;

    // Resume: an unfinished promote of this cluster is adopted when it is for the same commit and settings,
    // otherwise its instances are cleaned up before anything new is launched.
    let records = cloud.ledger.records(&pipeline.ledger_table, &pipeline.app, &env.name, 50).await?;
    let unfinished: Vec<&Record> = records
        .iter()
        .filter(|r| r.outcome == Outcome::Started && r.action == "promote" && r.cluster.as_deref() == Some(cluster.name.as_str()))
        .collect();
    let mut adopt: Option<Record> = None;
    let mut cleaned_records = Vec::new();
    for r in unfinished {
        if adopt.is_none() && r.commit.as_deref() == Some(commit.as_str()) && r.config_hash.as_deref() == Some(config.as_str()) {
            adopt = Some(r.clone());
        } else {
            cleaned_records.push(r.clone());
        }
    }
    // Instances that belong to no healthy generation: failed or abandoned releases whose cleanup was cut short.
    let terminal_ids: BTreeSet<&str> = records
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed | Outcome::Interrupted | Outcome::Abandoned))
        .map(|r| r.release_id.as_str())
        .collect();
    let stale_ids: BTreeSet<String> = cleaned_records.iter().map(|r| r.release_id.clone()).collect();
    let leftovers: Vec<InstanceId> = current
        .iter()
        .filter(|i| stale_ids.contains(release_of(i)) || terminal_ids.contains(release_of(i)))
        .map(|i| i.id.clone())
        .collect();

    let record = match &adopt {
        Some(r) => {
            (hooks.progress)(&format!("resuming unfinished release {} of {} to {}", r.release_id, commit.short(), cluster.name));
            let mut r = r.clone();
            r.detail = Some(format!("resumed by {} after an interruption", release_id));
            r
        }
        None => Record {
            app: pipeline.app.clone(),
            env: env.name.clone(),
            release_id: release_id.clone(),
            action: "promote".into(),
            cluster: Some(cluster.name.to_string()),
            commit: Some(commit.to_string()),
            ami: Some(ami.id.to_string()),
            from: from_commit.clone(),
            to: Some(commit.to_string()),
            actor: hooks.actor.name.clone(),
            caller: hooks.actor.caller.clone(),
            host: hooks.actor.host.clone(),
            started,
            finished: None,
            outcome: Outcome::Started,
            detail: None,
            config_hash: Some(config.clone()),
            new_instances: Vec::new(),
            retired_instances: Vec::new(),
            seconds: BTreeMap::new(),
            forced: false,
            weight: None,
            previous_commit: None,
        },
    };
    report.release_id = record.release_id.clone();
    let observed = cloud.clock.now();
    let mut run = Run {
        cloud,
        pipeline,
        env,
        cluster,
        hooks,
        opts,
        lock,
        record,
        ami: ami.id.clone(),
        commit: commit.clone(),
        config,
        started,
        phase_start: observed,
        // Reading the world and taking the lock, before anything changes.
        seconds: BTreeMap::from([("observe".to_owned(), observed.since(started).as_secs_f64())]),
        retiring: false,
        members: BTreeSet::new(),
        polls: 0,
    };

    let result = run_promote(&mut run, &all, &leftovers, &cleaned_records, &mut report).await;
    let finished = cloud.clock.now();
    run.lap("finish");
    run.record.finished = Some(finished);
    match result {
        Ok(()) => {
            run.record.outcome = Outcome::Succeeded;
            run.save().await?;
            report.outcome = "succeeded".into();
            report.polls = run.polls;
            report.seconds = run.seconds.clone();
            report.seconds.insert("total".into(), finished.since(run.started).as_secs_f64());
            (hooks.checkpoint)("finished")?;
            run.lock.release().await?;
            Ok(report)
        }
        Err(e) if e.kind() == ErrorKind::Crash => Err(e),
        Err(e) => {
            // Past the point of no return the record stays unfinished, so that a re-run adopts the serving instances.
            run.record.outcome = if run.retiring {
                Outcome::Started
            } else if e.kind() == ErrorKind::Interrupted {
                Outcome::Interrupted
            } else {
                Outcome::Failed
            };
            run.record.finished = (!run.retiring).then_some(finished);
            run.record.detail = Some(e.message().to_owned());
            let saved = run.save().await;
            let released = run.lock.release().await;
            saved?;
            released?;
            let kind = if e.kind() == ErrorKind::Interrupted { ErrorKind::Interrupted } else if e.kind() == ErrorKind::LockHeld { ErrorKind::LockHeld } else { ErrorKind::DeployFailed };
            Err(Error::new(
                kind,
                if run.retiring {
                    format!(
                        "promote of {} to {} failed: {}; the new instances are healthy and serving",
                        commit.short(),
                        cluster.name,
                        e.message()
                    )
                } else {
                    format!(
                        "promote of {} to {} failed: {}; the new instances were removed and {} serves what it served before",
                        commit.short(),
                        cluster.name,
                        e.message(),
                        cluster.name
                    )
                },
            ))
        }
    }
}

/// The body of a promote between taking the lock and recording the outcome. On error it has already removed
/// every instance it launched that was not yet serving in place of an old one.
async fn run_promote(run: &mut Run<'_, '_>, all: &[Instance], leftovers: &[InstanceId], stale: &[Record], report: &mut PromoteReport) -> Result<()> {
    let cloud = run.cloud;
    for r in stale {
        let mut r = r.clone();
        r.outcome = Outcome::Abandoned;
        r.finished = Some(cloud.clock.now());
        r.detail = Some(format!("unfinished; cleaned up by release {}", run.record.release_id));
        cloud.ledger.put_record(&run.pipeline.ledger_table, &r).await?;
    }
    if !leftovers.is_empty() {
        (run.hooks.progress)(&format!("cleaning up {} instance(s) left by unfinished or failed releases", leftovers.len()));
        let registered: BTreeSet<InstanceId> = cloud.balancer.members(&run.cluster.target).await?.into_iter().collect();
        let reg: Vec<InstanceId> = leftovers.iter().filter(|i| registered.contains(*i)).cloned().collect();
        if !reg.is_empty() {
            cloud.balancer.deregister(&run.cluster.target, &reg).await?;
        }
        cloud.fleet.terminate(leftovers).await?;
        report.cleaned = leftovers.to_vec();
    }
    run.save().await?;
    run.step("recorded")?;

    let mine = run.record.release_id.clone();
    let current: Vec<&Instance> = cluster_instances(all, run.env, run.cluster);
    let adopted: Vec<InstanceId> = current.iter().filter(|i| release_of(i) == mine).map(|i| i.id.clone()).collect();
    let old: Vec<InstanceId> = current
        .iter()
        .filter(|i| release_of(i) != mine && !leftovers.contains(&i.id))
        .map(|i| i.id.clone())
        .collect();
    report.adopted = adopted.clone();
    run.members = cloud.balancer.members(&run.cluster.target).await?.into_iter().collect();
    let old_registered = run.members.clone();

    let count = run.cluster.count;
    let batch = run.opts.batch.unwrap_or(count).clamp(1, count);
    let mut new_ids: Vec<InstanceId> = adopted;
    let mut remaining_old: Vec<InstanceId> = old;
    // Old instances retired in earlier rounds are gone for good; a failure rolls back only the round under way.
    let mut retired: Vec<InstanceId> = Vec::new();
    loop {
        let have = new_ids.len() as u32;
        if have >= count && remaining_old.is_empty() {
            break;
        }
        let round_new = (count.saturating_sub(have)).min(batch);
        let before = new_ids.len();
        let result = round(run, &mut new_ids, round_new, &mut remaining_old, &old_registered, batch, &mut retired).await;
        run.record.new_instances = new_ids.iter().map(ToString::to_string).collect();
        run.record.retired_instances = retired.iter().map(ToString::to_string).collect();
        if let Err(e) = result {
            if e.kind() == ErrorKind::Crash {
                return Err(e);
            }
            if run.retiring {
                // New capacity is healthy and serving, old capacity partly gone: keep the new; a re-run retires
                // what is left of the old.
                return Err(e.context("retiring the old instances (the new ones are serving; run the promote again to finish)"));
            }
            // Roll back this round's instances: they never replaced old capacity.
            let this_round: Vec<InstanceId> = new_ids[before..].to_vec();
            let rollback = if run.opts.batch.is_some() { this_round } else { new_ids.clone() };
            if !rollback.is_empty() {
                (run.hooks.progress)(&format!("rolling back: removing {} new instance(s)", rollback.len()));
                let reg: Vec<InstanceId> = rollback.iter().filter(|i| run.members.contains(*i)).cloned().collect();
                if !reg.is_empty() {
                    cloud.balancer.deregister(&run.cluster.target, &reg).await?;
                }
                cloud.fleet.terminate(&rollback).await?;
                new_ids.retain(|i| !rollback.contains(i));
                run.record.new_instances = new_ids.iter().map(ToString::to_string).collect();
            }
            return Err(e);
        }
        if new_ids.len() as u32 >= count && remaining_old.is_empty() {
            // The last round: the outcome is saved next, no need to save twice.
            break;
        }
        run.save().await?;
    }
    report.new_instances = new_ids;
    report.retired_instances = retired;
    Ok(())
}

/// One round: launch `n` new instances, wait until running, register, wait until healthy, then retire up to
/// `batch` old ones (all of them when not batching).
async fn round(
    run: &mut Run<'_, '_>,
    new_ids: &mut Vec<InstanceId>,
    n: u32,
    remaining_old: &mut Vec<InstanceId>,
    old_registered: &BTreeSet<InstanceId>,
    batch: u32,
    retired: &mut Vec<InstanceId>,
) -> Result<()> {
    let cloud = run.cloud;
    run.retiring = false;
    if n > 0 {
        run.check_cancelled()?;
        let launched = run.launch(n).await?;
        new_ids.extend(launched.iter().cloned());
        run.record.new_instances = new_ids.iter().map(ToString::to_string).collect();
        run.save().await?;
        run.lap("launch");
        run.step("launched")?;
    }
    // Adopted instances may not be running or registered yet either: check them all.
    let pending: Vec<InstanceId> = new_ids.clone();
    run.wait_running(&pending).await?;
    run.lap("wait-running");
    run.step("running")?;
    let to_register: Vec<InstanceId> = pending.iter().filter(|i| !run.members.contains(*i)).cloned().collect();
    if !to_register.is_empty() {
        cloud.balancer.register(&run.cluster.target, &to_register, run.cluster.deploy.port).await?;
        run.members.extend(to_register.iter().cloned());
        (run.hooks.progress)(&format!("registered {} instance(s) with {}", to_register.len(), run.cluster.target));
    }
    run.lap("register");
    run.step("registered")?;
    run.wait_healthy(&pending).await?;
    run.lap("wait-healthy");
    run.step("healthy")?;
    // From here on old capacity goes away; new capacity is healthy, so the promote finishes whatever happens.
    let full = new_ids.len() as u32 >= run.cluster.count;
    let take = if full { remaining_old.len() } else { (batch as usize).min(remaining_old.len()) };
    let going: Vec<InstanceId> = remaining_old.drain(..take).collect();
    let was_registered = going.iter().any(|i| old_registered.contains(i));
    run.retiring = true;
    run.retire(&going, was_registered).await?;
    retired.extend(going);
    run.lap("retire");
    Ok(())
}
