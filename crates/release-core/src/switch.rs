//! `release switch <cluster>`: send the live name's traffic to a cluster with ONE Route53 change batch, refused
//! unless the cluster is fully healthy and serves nothing stray (or `--force`), under the environment's lock.
//!
//! A switch never sends traffic through a record that does not alias its cluster's load balancer as it is now
//! (one deleted and created again has a new DNS name): it refuses, `--force` or not, and says to provision, which
//! repoints the record. Lowering such a record to weight 0 is allowed: that takes traffic away from it.
//!
//! Where the change is made: [`change_weights`] (also used by rollback). The wait for Route53 to apply it runs
//! here, through the clock: bounded, cancellable, with the lock renewed meanwhile; a wait that times out re-reads
//! the records and records what actually holds.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use crate::clock::format_duration;
use crate::error::{Error, Result};
use crate::ids::{short_sha, AppName, ClusterName, CommitSha, EnvName, InstanceId, ReleaseId};
use crate::ledger::{Action, LiveRelease, Outcome, Record, SwitchDetails};
use crate::pipeline::{Cluster, Environment, LbTarget, Pipeline};
use crate::ports::{ChangeStatus, Cloud, Expect, HealthState, Instance, LbInfo, RecordChange, TargetHealth, WeightedAlias};
use crate::provision::{self, Misdirected};
use crate::runner::{self, Op, OpSpec, Session};
use crate::weights::Weights;
use crate::world::{self, LiveName, Stray};

/// How long a switch waits for Route53 to report a change INSYNC (it usually takes under a minute).
pub const INSYNC_TIMEOUT: Duration = Duration::from_secs(300);
/// How often it asks.
pub const INSYNC_POLL: Duration = Duration::from_secs(3);

/// How a switch is asked for.
#[derive(Clone, Debug, Default)]
pub struct SwitchOptions {
    /// The target's percentage (100 when not given).
    pub weight: Option<u8>,
    /// Past the readiness and stray checks.
    pub force: bool,
    /// Whether to wait in the queue for a held lock (`--wait`).
    pub wait: crate::queue::Wait,
    /// `--steps`: a rollout in these steps, over `[env.NAME.rollout]` (which applies when neither this nor
    /// `weight` is given).
    pub steps: Option<Vec<crate::pipeline::RolloutStep>>,
    /// `--pause`: how long each step is watched, over the file's.
    pub pause: Option<Duration>,
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

impl Readiness {
    /// Ready for traffic.
    pub fn is_ready(&self) -> bool {
        self.problems.is_empty() && self.strays.is_empty()
    }
}

/// Judges a cluster from its tagged instances and its load balancer's health (whose ids are its members).
pub fn readiness(app: &crate::ids::AppName, env: &Environment, cluster: &Cluster, app_instances: &[Instance], health: &[TargetHealth], others: &[Instance]) -> Readiness {
    let mine = world::cluster_instances(app_instances, env, cluster);
    let members: Vec<InstanceId> = health.iter().map(|h| h.id.clone()).collect();
    let strays = world::strays(app, env, cluster, &members, app_instances, others, true);
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
    let running = mine.iter().filter(|i| i.state == "running").count();
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
    let commits: BTreeSet<&str> = world::cluster_instances(app_instances, env, cluster)
        .iter()
        .filter(|i| i.state == "running")
        .filter_map(|i| i.tags.get(crate::ports::tags::COMMIT).map(String::as_str))
        .collect();
    if commits.len() == 1 {
        commits.iter().next().and_then(|c| CommitSha::parse(c).ok())
    } else {
        None
    }
}

/// What a switch reads before deciding.
#[derive(Clone, Debug)]
pub struct SwitchWorld {
    /// The live name.
    pub live: LiveName,
    /// The app's instances.
    pub instances: Vec<Instance>,
    /// The target's load balancer health (its members).
    pub health: Vec<TargetHealth>,
    /// Members of the target's load balancer that are not the app's.
    pub others: Vec<Instance>,
    /// Recent records (for unfinished switches).
    pub records: Vec<Record>,
    /// The environment's load balancers that exist (where its records should point).
    pub lbs: Vec<LbInfo>,
    /// The states of the environment's watched alarms (`[env.NAME.rollout] alarms`) that CloudWatch knows.
    pub alarms: Vec<crate::ports::AlarmStatus>,
}

/// What a switch will do. A plain value: `--plan` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct SwitchPlan {
    /// The app.
    pub app: AppName,
    /// The environment.
    pub env: EnvName,
    /// The target cluster.
    pub cluster: ClusterName,
    /// Weights now.
    pub from: Weights,
    /// Weights after.
    pub to: Weights,
    /// The commit the target runs.
    pub commit: Option<CommitSha>,
    /// What is live now (the primary and its commit).
    pub previous: Option<LiveRelease>,
    /// Why the target is not ready (empty: ready).
    pub problems: Vec<String>,
    /// Strays in the target's load balancer.
    pub strays: Vec<Stray>,
    /// --force.
    pub forced: bool,
    /// Whether anything changes.
    pub changes: bool,
    /// Unfinished switches of dead runs: (release, whether Route53 holds what they asked for).
    pub unfinished: Vec<(ReleaseId, bool)>,
    /// A switch in steps: the steps, the weights of each, the pause and the alarms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::rollout::RolloutPlan>,
}

/// What a switch did.
#[derive(Clone, Debug, Serialize)]
pub struct SwitchReport {
    /// The release (empty when nothing changed).
    pub release_id: String,
    /// The plan it carried out.
    #[serde(flatten)]
    pub plan: SwitchPlan,
    /// Whether Route53 was changed.
    pub changed: bool,
    /// Whether the plan was only shown.
    pub planned: bool,
    /// Whether Route53 reported the change INSYNC (false: it timed out, and the records were read back).
    pub in_sync: bool,
    /// Seconds taken.
    pub seconds: f64,
    /// A switch in steps: how far it went, and why it went back if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::rollout::RolloutOutcome>,
    /// The hooks it ran (`after_traffic`).
    pub hooks: Vec<crate::hooks::HookResult>,
}

impl SwitchReport {
    /// The report of a switch that changed nothing (yet): `planned` for `--plan`.
    pub fn unchanged(plan: SwitchPlan, planned: bool) -> Self {
        SwitchReport { release_id: String::new(), plan, changed: false, planned, in_sync: true, seconds: 0.0, rollout: None, hooks: Vec::new() }
    }
}

impl SwitchPlan {
    /// What the ledger record of this switch says it does; `rollout` is the journal of a switch in steps.
    pub fn details(&self, rollout: Option<crate::ledger::RolloutState>) -> SwitchDetails {
        SwitchDetails {
            cluster: self.cluster.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            commit: self.commit.clone(),
            previous: self.previous.clone(),
            rollout,
        }
    }
}

/// Reads what a switch to `cluster` decides on.
pub async fn observe(cloud: &Cloud, pipeline: &Pipeline, env: &Environment, cluster: &Cluster) -> Result<SwitchWorld> {
    let live = world::live_name(cloud, env).await?.ok_or_else(|| no_dns(env))?;
    world::require_records(env, &live)?;
    let instances = cloud.fleet.app_instances(&pipeline.app).await?;
    let health = cloud.balancer.health(&cluster.target).await.map_err(|e| world::lb_missing(env, cluster, e))?;
    let members: Vec<InstanceId> = health.iter().map(|h| h.id.clone()).collect();
    let others = world::describe_others(cloud, &members, &instances).await?;
    let records = cloud.ledger.records(&pipeline.ledger_table, &pipeline.app, &env.name, Some(crate::promote::plan::RECENT_RECORDS)).await?;
    let lbs = env_lbs(cloud, env).await?;
    let alarms = crate::preflight::alarms(cloud, env).await?;
    Ok(SwitchWorld { live, instances, health, others, records, lbs, alarms })
}

/// The environment's load balancers that exist, in one describe per kind.
pub(crate) async fn env_lbs(cloud: &Cloud, env: &Environment) -> Result<Vec<LbInfo>> {
    let targets: Vec<LbTarget> = env.clusters().iter().map(|c| c.target.clone()).collect();
    cloud.balancer.describe(&targets).await
}

/// The records a change to `to` would send traffic through that do not alias their cluster's load balancer: those
/// it changes that take traffic after it. A record it lowers to 0 is not one: that takes traffic away from it (the
/// way out when the live cluster's record is the one pointing at a dead name).
pub fn misdirected_for(env: &Environment, live: &LiveName, to: &Weights, lbs: &[LbInfo]) -> Vec<Misdirected> {
    provision::misdirected(env, &live.records, lbs)
        .into_iter()
        .filter(|m| ClusterName::parse(&m.cluster).is_ok_and(|c| to.has(&c) && to.is_live(&c) && to.weight(&c) != m.weight))
        .collect()
}

/// Refuses, from a fresh look at the live name and the load balancers, when weights `to` would send traffic
/// through a misdirected record (rollback asks before it promotes anything).
pub async fn check_records(cloud: &Cloud, env: &Environment, to: &Weights) -> Result<()> {
    let Some(live) = world::live_name(cloud, env).await? else { return Ok(()) };
    let lbs = env_lbs(cloud, env).await?;
    refuse_misdirected(env, &misdirected_for(env, &live, to, &lbs))
}

/// Refuses a change that would send traffic through misdirected records, naming each and the fix. `--force` does
/// not skip this: the name a record points at may not exist any more, and provision repoints it safely.
pub fn refuse_misdirected(env: &Environment, list: &[Misdirected]) -> Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    let what: Vec<String> = list.iter().map(Misdirected::describe).collect();
    Err(Error::refused(format!(
        "{}; switching would send traffic there; run `release provision --env {}` to point it at the load balancer, then switch again (--force does not skip this); nothing was changed",
        what.join("; "),
        env.name
    )))
}

fn no_dns(env: &Environment) -> Error {
    Error::input(format!(
        "env {} has no dns, so there is nothing to switch; promote to it instead (`release promote <sha> --env {}`)",
        env.name, env.name
    ))
}

/// What is live now: the primary cluster and the commit it runs.
pub fn previous(env: &Environment, weights: &Weights, instances: &[Instance]) -> Option<LiveRelease> {
    let primary = weights.primary().filter(|p| weights.is_live(p))?;
    let cluster = env.cluster(primary.as_str()).ok()?;
    let commit = commit_of(env, cluster, instances)?;
    Some(LiveRelease { commit, cluster: Some(primary.clone()), release_id: None })
}

/// Decides a switch from what [`observe`] read.
pub fn plan_from(pipeline: &Pipeline, env: &Environment, cluster: &Cluster, opts: &SwitchOptions, w: &SwitchWorld) -> Result<SwitchPlan> {
    let from = w.live.weights.clone();
    let to = from.after_switch(&cluster.name, opts.weight)?;
    let ready = readiness(&pipeline.app, env, cluster, &w.instances, &w.health, &w.others);
    let changes = to != from;
    if changes {
        refuse_misdirected(env, &misdirected_for(env, &w.live, &to, &w.lbs))?;
    }
    if changes && crate::preflight::toward(&from, &to, &cluster.name) {
        let what = match opts.steps {
            Some(_) => "a rollout would go back at its first step".to_owned(),
            None => format!("traffic would move to cluster {} while it fires ({} -> {})", cluster.name, from.describe_shares(), to.describe_shares()),
        };
        crate::preflight::check(env, cluster, Some(&ready), &w.alarms, opts.force, &what)?;
    }
    let current = w.live.weights.describe();
    let unfinished = w
        .records
        .iter()
        .filter(|r| r.outcome == Outcome::Started)
        .filter_map(|r| match &r.action {
            Action::Switch(s) => Some((r.release_id.clone(), s.to.describe() == current)),
            _ => None,
        })
        .collect();
    Ok(SwitchPlan {
        app: pipeline.app.clone(),
        env: env.name.clone(),
        cluster: cluster.name.clone(),
        from: from.clone(),
        to,
        // What the target serves: one commit across its instances, else the one its running instances run (an old
        // instance still shutting down does not leave the record without a commit).
        commit: ready.commit.clone().or_else(|| commit_of(env, cluster, &w.instances)),
        previous: previous(env, &from, &w.instances),
        problems: ready.problems,
        strays: ready.strays,
        forced: opts.force,
        changes,
        unfinished,
        rollout: None,
    })
}

/// Observes and plans.
pub async fn plan(session: &Session, pipeline: &Pipeline, cluster_name: &str, opts: &SwitchOptions) -> Result<SwitchPlan> {
    let (env, cluster) = pipeline.cluster(cluster_name)?;
    if env.dns().is_none() {
        return Err(no_dns(env));
    }
    if opts.weight.is_some_and(|w| w > 100) {
        return Err(Error::input(format!("--weight is a percentage: give 0 to 100, not {}", opts.weight.unwrap_or(0))));
    }
    let w = observe(&session.cloud, pipeline, env, cluster).await?;
    if let Some(r) = crate::rollout::wanted(env, opts)? {
        return crate::rollout::plan_from(pipeline, env, cluster, opts, &r, &w);
    }
    plan_from(pipeline, env, cluster, opts, &w)
}

/// Switches: under the lock, observes and plans again (refusing when the plan differs from the `confirmed` one),
/// closes unfinished switches of dead runs, and makes the one change.
pub async fn switch(session: &Session, pipeline: &Pipeline, cluster_name: &str, opts: &SwitchOptions, confirmed: Option<&SwitchPlan>) -> Result<SwitchReport> {
    let (env, cluster) = pipeline.cluster(cluster_name)?;
    if env.dns().is_none() {
        return Err(no_dns(env));
    }
    if crate::rollout::applies(env, opts)? {
        return crate::rollout::run(session, pipeline, env, cluster, opts, confirmed).await;
    }
    let started = session.cloud.clock.now();
    let spec = OpSpec::new(format!("switch {} to {}", env.name, cluster.name)).waiting(
        opts.wait,
        crate::queue::TicketSpec { action: crate::ledger::TicketAction::Switch, commit: None, cluster: Some(cluster.name.clone()) },
    );
    runner::run(session, pipeline, env, spec, async |op: &mut Op<'_>| {
        let w = observe(op.cloud(), pipeline, env, cluster).await?;
        // A rollout whose process died is resumed (or, to another cluster, refused), never closed as abandoned.
        if opts.weight.is_none() && crate::rollout::unfinished(&w.records).is_some() {
            return crate::rollout::body(op, cluster, opts, confirmed, false, started, w).await;
        }
        let plan = plan_from(pipeline, env, cluster, opts, &w)?;
        if let Some(c) = confirmed {
            if c.from != plan.from || c.to != plan.to {
                return Err(Error::refused(format!(
                    "the weights changed since the plan was shown ({} -> {} then, {} -> {} now); nothing was changed, run the switch again",
                    c.from, c.to, plan.from, plan.to
                )));
            }
        }
        close_unfinished(op, &w.records, &w.live.weights).await?;
        let mut report = SwitchReport::unchanged(plan.clone(), false);
        if !plan.changes {
            return Ok(report);
        }
        let mut record = op.draft(Action::Switch(plan.details(None)));
        record.forced = plan.forced && (!plan.problems.is_empty() || !plan.strays.is_empty());
        if record.forced {
            let mut why = plan.problems.clone();
            why.extend(plan.strays.iter().map(|s| format!("stray {}", s.describe())));
            record.detail = Some(format!("forced past: {}", why.join("; ")));
        }
        report.release_id = record.release_id.to_string();
        op.open(record).await?;
        op.step("recorded")?;
        let comment = format!("release switch {} {}", pipeline.app, cluster.name);
        report.in_sync = change_weights(op, &w.live, &plan.to, &comment).await?;
        report.changed = true;
        crate::hooks::after_switch(op, &plan).await?;
        report.hooks = op.record().map(|r| r.hooks.clone()).unwrap_or_default();
        report.seconds = op.cloud().clock.now().since(started).as_secs_f64();
        Ok(report)
    })
    .await
}

/// Closes the records of switches whose process died: applied (Route53 holds what they asked for) or abandoned.
pub async fn close_unfinished(op: &mut Op<'_>, records: &[Record], now_weights: &Weights) -> Result<()> {
    let table = op.pipeline().ledger_table.clone();
    let current = now_weights.describe();
    for r in records.iter().filter(|r| r.outcome == Outcome::Started) {
        let Action::Switch(s) = &r.action else { continue };
        let applied = s.to.describe() == current;
        let mut r = r.clone();
        let holder = r.holder.clone();
        r.outcome = if applied { Outcome::Succeeded } else { Outcome::Abandoned };
        r.finished = Some(op.cloud().clock.now());
        r.detail = Some(if applied {
            "its process died after Route53 took the change; closed by a later run".into()
        } else {
            "its process died before Route53 took the change; closed by a later run".into()
        });
        r.rolled_back = Some(!applied);
        op.cloud().ledger.put_record(&table, &r, Expect::Holder(holder)).await?;
    }
    Ok(())
}

/// Sends `to` as ONE change batch, then waits (through the clock) until Route53 has it everywhere. Returns
/// whether it reported INSYNC; on a timeout the records are read back: holding `to` is a success (`false`),
/// anything else an error. The change is the point of no return.
pub async fn change_weights(op: &mut Op<'_>, live: &LiveName, to: &Weights, comment: &str) -> Result<bool> {
    let changes: Vec<RecordChange> = live
        .records
        .weighted
        .iter()
        .filter(|r| to.clusters().any(|c| c.as_str() == r.set_identifier))
        .filter_map(|r| {
            let c = ClusterName::parse(&r.set_identifier).ok()?;
            let w = to.weight(&c);
            (w != r.weight).then(|| RecordChange::Upsert(WeightedAlias { weight: w, ..r.clone() }))
        })
        .collect();
    if changes.is_empty() {
        return Ok(true);
    }
    // From a fresh look at the load balancers: never send traffic through a record that points elsewhere.
    let lbs = env_lbs(op.cloud(), op.env()).await?;
    refuse_misdirected(op.env(), &misdirected_for(op.env(), live, to, &lbs))?;
    for m in provision::misdirected(op.env(), &live.records, &lbs) {
        op.progress(&format!("note: {}; `release provision --env {}` points it there", m.describe(), op.env().name));
    }
    op.guard().await?;
    let dns = op.env().dns().map(|d| d.record.clone()).unwrap_or_default();
    op.progress(&format!("route53: one change batch for {dns}: {} -> {}", live.weights.describe_shares(), to.describe_shares()));
    let change = op.cloud().dns.submit(&live.zone, &changes, comment).await?;
    op.point_of_no_return("Route53 has the change");
    op.step("changed")?;
    let deadline = op.cloud().clock.now().add(INSYNC_TIMEOUT);
    let mut announced = false;
    loop {
        match op.cloud().dns.change_status(&change).await? {
            ChangeStatus::InSync => return Ok(true),
            ChangeStatus::Pending => {}
        }
        if op.cloud().clock.now() >= deadline {
            let set = op.cloud().dns.records(&live.zone, &dns).await?;
            let holds = set.weighted.iter().all(|r| ClusterName::parse(&r.set_identifier).map_or(true, |c| !to.has(&c) || to.weight(&c) == r.weight));
            if holds {
                op.progress(&format!(
                    "route53 has not reported change {} INSYNC after {}, but the records hold the new weights",
                    change.0,
                    format_duration(INSYNC_TIMEOUT)
                ));
                if let Ok(r) = op.record_mut() {
                    r.detail = Some(format!("Route53 did not report INSYNC within {}; the records hold the new weights", format_duration(INSYNC_TIMEOUT)));
                }
                return Ok(false);
            }
            return Err(Error::aws(format!(
                "route53 change {} is not in sync after {} and the records do not hold the new weights",
                change.0,
                format_duration(INSYNC_TIMEOUT)
            )));
        }
        if !announced {
            op.progress("waiting until Route53 reports the change INSYNC");
            announced = true;
        }
        op.pause(INSYNC_POLL).await?;
    }
}
