//! `release switch <cluster>`: send the live name's traffic to a cluster with ONE Route53 change batch, refused
//! unless the cluster is fully healthy and serves nothing stray (or `--force`), under the environment's lock.
//!
//! A switch never sends traffic through a record that does not alias its cluster's load balancer as it is now
//! (one deleted and created again has a new DNS name): it refuses, `--force` or not, and says to provision, which
//! repoints the record. Lowering such a record to weight 0 is allowed: that takes traffic away from it.
//!
//! Where the change is made: [`crate::steps::dns::flip`] (the one flip: rollouts, rollback and hooks use it too). The wait for Route53 to apply it runs
//! here, through the clock: bounded, cancellable, with the lock renewed meanwhile; a wait that times out re-reads
//! the records and records what actually holds.

pub mod hooks;
pub mod rollout;

use std::time::Duration;

use serde::Serialize;

use crate::model::error::{Error, Input, Refused, Result};
use crate::model::ids::{AppName, ClusterName, CommitSha, EnvName, InstanceId, ReleaseId};
use crate::model::ledger::{Action, LiveRelease, Outcome, Record, SwitchDetails};
use crate::model::pipeline::{Cluster, Environment, Pipeline};
use crate::ports::{Cloud, Instance, LbInfo, TargetHealth};
use crate::engine::runner::{self, Op, OpSpec};
use crate::model::weights::Weights;
use crate::observe::world::{self, LiveName, Stray};
use crate::steps::records::close_unfinished;
use crate::observe::balancers::env_lbs;
use crate::observe::balancers::misdirected_for;
use crate::observe::balancers::refuse_misdirected;
use crate::observe::world::Readiness;
use crate::observe::world::readiness;
use crate::observe::world::commit_of;
use crate::observe::world::previous;
use crate::steps::dns::{flip, Way};
use crate::engine::session::Session;

/// How a switch is asked for.
#[derive(Clone, Debug, Default)]
pub struct SwitchOptions {
    /// The target's percentage (100 when not given).
    pub weight: Option<u8>,
    /// Past the readiness and stray checks.
    pub force: bool,
    /// Whether to wait in the queue for a held lock (`--wait`).
    pub wait: crate::engine::queue::Wait,
    /// `--steps`: a rollout in these steps, over `[env.NAME.rollout]` (which applies when neither this nor
    /// `weight` is given).
    pub steps: Option<Vec<crate::model::pipeline::RolloutStep>>,
    /// `--pause`: how long each step is watched, over the file's.
    pub pause: Option<Duration>,
    /// `--override-gates --reason TEXT`: go through closed promotion gates, recorded with this reason.
    pub override_gates: Option<String>,
}

impl Readiness {
    /// Ready for traffic.
    pub fn is_ready(&self) -> bool {
        self.problems.is_empty() && self.strays.is_empty()
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
    pub rollout: Option<crate::ops::switch::rollout::RolloutPlan>,
    /// The clusters whose record has EvaluateTargetHealth off (set by hand: release writes it on): the switch keeps
    /// it so, and traffic goes to them even when their load balancer has no healthy target.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub health_not_evaluated: Vec<ClusterName>,
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
    pub rollout: Option<crate::ops::switch::rollout::RolloutOutcome>,
    /// The hooks it ran (`after_traffic`).
    pub hooks: Vec<crate::model::hook::HookResult>,
}

impl SwitchReport {
    /// The report of a switch that changed nothing (yet): `planned` for `--plan`.
    pub fn unchanged(plan: SwitchPlan, planned: bool) -> Self {
        SwitchReport { release_id: String::new(), plan, changed: false, planned, in_sync: true, seconds: 0.0, rollout: None, hooks: Vec::new() }
    }
}

impl SwitchPlan {
    /// What the ledger record of this switch says it does; `rollout` is the journal of a switch in steps.
    pub fn details(&self, rollout: Option<crate::model::ledger::RolloutState>) -> SwitchDetails {
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
    let instances = crate::observe::groups::serving_instances(cloud, pipeline, cloud.fleet.app_instances(&pipeline.app).await?).await?;
    let health = cloud.balancer.health(&cluster.target).await.map_err(|e| world::lb_missing(env, cluster, e))?;
    let members: Vec<InstanceId> = health.iter().map(|h| h.id.clone()).collect();
    let others = world::describe_others(cloud, &members, &instances).await?;
    let records = crate::engine::session::recent_records(cloud, pipeline, &env.name).await?;
    let lbs = env_lbs(cloud, env).await?;
    let alarms = crate::observe::alarms::watched(cloud, env).await?;
    Ok(SwitchWorld { live, instances, health, others, records, lbs, alarms })
}

fn no_dns(env: &Environment) -> Error {
    Input::NoDns { env: env.name.to_string() }.into()
}

/// Refuses when the weights changed since the plan the user confirmed (a switch and a rollout alike).
fn unchanged_since(confirmed: Option<&SwitchPlan>, plan: &SwitchPlan) -> Result<()> {
    match confirmed {
        Some(c) if c.from != plan.from || c.to != plan.to => Err(Refused::WeightsChanged {
            then_from: c.from.to_string(),
            then_to: c.to.to_string(),
            now_from: plan.from.to_string(),
            now_to: plan.to.to_string(),
        }
        .into()),
        _ => Ok(()),
    }
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
    if changes && crate::observe::preflight::toward(&from, &to, &cluster.name) {
        let what = match opts.steps {
            Some(_) => "a rollout would go back at its first step".to_owned(),
            None => format!("traffic would move to cluster {} while it fires ({} -> {})", cluster.name, from.describe_shares(), to.describe_shares()),
        };
        crate::observe::preflight::check(env, cluster, Some(&ready), &w.alarms, opts.force, &what)?;
    }
    let unfinished = w
        .records
        .iter()
        .filter(|r| r.outcome == Outcome::Started)
        .filter_map(|r| match &r.action {
            Action::Switch(s) => Some((r.release_id.clone(), s.applied(&w.live.weights))),
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
        health_not_evaluated: health_not_evaluated(env, &w.live.records),
    })
}

/// The environment's clusters whose record does not evaluate target health (see [`SwitchPlan::health_not_evaluated`]).
pub fn health_not_evaluated(env: &Environment, records: &crate::ports::RecordSet) -> Vec<ClusterName> {
    env.clusters().iter().filter(|c| records.weighted.iter().any(|r| r.set_identifier == c.name.as_str() && !r.evaluate_target_health)).map(|c| c.name.clone()).collect()
}

/// Observes and plans.
pub async fn plan(session: &Session, pipeline: &Pipeline, cluster_name: &str, opts: &SwitchOptions) -> Result<SwitchPlan> {
    let (env, cluster) = pipeline.cluster(cluster_name)?;
    if env.dns().is_none() {
        return Err(no_dns(env));
    }
    if opts.weight.is_some_and(|w| w > 100) {
        return Err(Input::Weight { given: opts.weight.unwrap_or(0) }.into());
    }
    let w = observe(&session.cloud, pipeline, env, cluster).await?;
    if let Some(r) = crate::ops::switch::rollout::wanted(env, opts)? {
        return crate::ops::switch::rollout::plan_from(pipeline, env, cluster, opts, &r, &w);
    }
    plan_from(pipeline, env, cluster, opts, &w)
}

/// The promotion gates of the environment for the commit traffic would go to, under the lock just before the first
/// change: refused (exit 4) while one is closed, unless `--override-gates`, which the record then carries. A switch
/// that changes nothing, or to a cluster whose commit is unknown, asks none.
pub(crate) async fn gates(op: &mut Op<'_>, plan: &SwitchPlan, opts: &SwitchOptions, records: &[Record]) -> Result<()> {
    let Some(commit) = plan.commit.as_ref().filter(|_| plan.changes) else { return Ok(()) };
    let what = format!("switch of {} to {} ({})", plan.env, plan.cluster, crate::model::ids::short_sha(commit.as_str()));
    let overridden = crate::observe::gates::check(op.cloud(), op.pipeline(), op.env(), commit, &what, opts.override_gates.as_deref(), Some(records)).await?;
    op.override_gates(overridden);
    Ok(())
}

/// Switches: under the lock, observes and plans again (refusing when the plan differs from the `confirmed` one),
/// closes unfinished switches of dead runs, and makes the one change.
pub async fn switch(session: &Session, pipeline: &Pipeline, cluster_name: &str, opts: &SwitchOptions, confirmed: Option<&SwitchPlan>) -> Result<SwitchReport> {
    let (env, cluster) = pipeline.cluster(cluster_name)?;
    if env.dns().is_none() {
        return Err(no_dns(env));
    }
    if crate::ops::switch::rollout::applies(env, opts)? {
        return crate::ops::switch::rollout::run(session, pipeline, env, cluster, opts, confirmed).await;
    }
    let started = session.cloud.clock.now();
    let spec = OpSpec::new(format!("switch {} to {}", env.name, cluster.name)).waiting(
        opts.wait,
        crate::engine::queue::TicketSpec { action: crate::model::ledger::TicketAction::Switch, commit: None, cluster: Some(cluster.name.clone()) },
    );
    runner::run(session, pipeline, env, spec, async |op: &mut Op<'_>| {
        let w = observe(op.cloud(), pipeline, env, cluster).await?;
        // A rollout whose process died is resumed (or, to another cluster, refused), never closed as abandoned.
        if opts.weight.is_none() && crate::model::ledger::unfinished(&w.records).is_some() {
            return crate::ops::switch::rollout::body(op, cluster, opts, confirmed, false, started, w).await;
        }
        let plan = plan_from(pipeline, env, cluster, opts, &w)?;
        unchanged_since(confirmed, &plan)?;
        gates(op, &plan, opts, &w.records).await?;
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
        op.step(crate::model::phase::Checkpoint::Recorded)?;
        let comment = format!("release switch {} {}", pipeline.app, cluster.name);
        let mut live = w.live.clone();
        report.in_sync = flip(op, &mut live, &plan.to, &comment, Way::Guarded, Some("Route53 has the change")).await?.in_sync();
        report.changed = true;
        crate::ops::switch::hooks::after_switch(op, &plan).await?;
        report.hooks = op.record().map(|r| r.hooks.clone()).unwrap_or_default();
        report.seconds = op.cloud().clock.now().since(started).as_secs_f64();
        Ok(report)
    })
    .await
}
