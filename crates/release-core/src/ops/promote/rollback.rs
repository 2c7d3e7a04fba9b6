//! `release rollback --env ENV`: one step back through the history of what was live, never a toggle.
//!
//! - During a gradual shift (traffic split over clusters) it restores the weights from before the shift and
//!   touches no instance.
//! - Otherwise it goes to the release live before the current one ([`crate::model::ledger::live_history`]): repeated
//!   rollbacks walk v3 -> v2 -> v1. Blue/green: a switch back when an idle cluster still runs that release healthy,
//!   else a promote of it to the idle cluster and then a switch. In place: a promote of the previous commit.
//!
//! The whole rollback holds the environment's lock once and is one ledger record (`rollback`).

use serde::Serialize;

use crate::model::error::{Deploy, Error, Internal, NotFound, Refused, Result};
use crate::model::ids::{short_sha, ClusterName, CommitSha, EnvName};
use crate::model::ledger::{live_history, rollback_target, weights_before_shift, Action, LiveRelease, Record, RollbackDetails, RollbackPath};
use crate::model::pipeline::{Cluster, Environment, Pipeline};
use crate::ports::Instance;
use crate::ops::promote::{self, PromoteOptions, PromotePlan, PromoteReport};
use crate::engine::runner::{self, Op, OpSpec};
use crate::observe::world::{commit_of, readiness};
use crate::model::weights::Weights;
use crate::observe::world;
use crate::engine::session::Session;

/// What a rollback will do. A plain value: `--plan` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct RollbackPlan {
    /// The environment.
    pub env: EnvName,
    /// How it goes back.
    pub path: RollbackPath,
    /// What is live now.
    pub from_commit: Option<CommitSha>,
    /// Where it is live now.
    pub from_cluster: Option<ClusterName>,
    /// What will be live.
    pub to_commit: CommitSha,
    /// Where.
    pub cluster: ClusterName,
    /// Weights now (blue/green).
    pub from_weights: Option<Weights>,
    /// Weights after (blue/green).
    pub to_weights: Option<Weights>,
    /// The promote it makes first, if any.
    pub promote: Option<PromotePlan>,
    /// An asg cluster inside the rollback window: the disabled group it enables and the serving one it disables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<GroupSwitch>,
    /// The releases live before the current one, newest first (the first is where this rollback goes).
    pub history: Vec<LiveRelease>,
    /// Where a further rollback would go after this one, if the ledger holds anything earlier.
    pub next: Option<CommitSha>,
    /// `roll prod back from 3f2a… on green to 9c1d… on blue`.
    pub summary: String,
}

/// A rollback inside an asg cluster's rollback window: no launch, two groups trade places.
#[derive(Clone, Debug, Serialize)]
pub struct GroupSwitch {
    /// The disabled group of the release to go back to, enabled again.
    pub enable: String,
    /// The serving group, disabled.
    pub disable: String,
    /// The desired capacity the enabled group is raised to at least (the serving group's).
    pub desired: u32,
    /// The enabled group's min once it serves (its min before it was disabled, as the ledger recorded it).
    pub min: u32,
    /// How much of the window is left.
    #[serde(serialize_with = "crate::model::clock::ser_duration")]
    pub window_left: std::time::Duration,
}

/// What a rollback did.
#[derive(Clone, Debug, Serialize)]
pub struct RollbackReport {
    /// The release.
    pub release_id: String,
    /// The plan carried out.
    #[serde(flatten)]
    pub plan: RollbackPlan,
    /// The promote made, if any.
    pub promoted: Option<PromoteReport>,
    /// Whether Route53 reported the change INSYNC.
    pub in_sync: bool,
}

fn sha(c: &CommitSha) -> &str {
    short_sha(c.as_str())
}

/// Observes and plans a rollback of `env`.
pub async fn plan(session: &Session, pipeline: &Pipeline, env: &Environment, opts: &PromoteOptions) -> Result<RollbackPlan> {
    plan_seeing(session, pipeline, env, opts, None).await
}

/// The ledger as a plan reads it: `open`, the record of the run making the plan and still open (a promote whose
/// `after_traffic` failed, rolling back in its own run), read as closed succeeded, which it is but for its hook:
/// what it deployed is what is live, and it is no dead run's to clean up.
fn seeing(mut records: Vec<Record>, open: Option<&Record>) -> Vec<Record> {
    if let Some(open) = open {
        for r in records.iter_mut().filter(|r| r.release_id == open.release_id) {
            *r = open.clone();
            r.outcome = crate::model::ledger::Outcome::Succeeded;
        }
    }
    records
}

/// [`plan`], with the ledger read as [`seeing`] says.
async fn plan_seeing(session: &Session, pipeline: &Pipeline, env: &Environment, opts: &PromoteOptions, open: Option<&Record>) -> Result<RollbackPlan> {
    let cloud = &session.cloud;
    let records = seeing(cloud.ledger.records(&pipeline.ledger_table, &pipeline.app, &env.name, None).await?, open);
    let instances = crate::observe::groups::serving_instances(cloud, pipeline, cloud.fleet.app_instances(&pipeline.app).await?).await?;
    let mut stack = live_history(&records);
    // A vetoed commit is never gone back to: the walk steps over it (the one live now stays, to be left).
    let top = stack.len().saturating_sub(1);
    let mut i = 0;
    stack.retain(|l| {
        i += 1;
        i - 1 == top || crate::observe::gates::veto(&records, &l.commit).is_none()
    });
    let seen = Seen { open: open.cloned(), records, instances, stack };

    let Some(live) = world::live_name(cloud, env).await? else {
        return in_place(session, pipeline, env, opts, &seen).await;
    };
    world::require_records(env, &live)?;
    let weights = live.weights.clone();

    if weights.is_partial() {
        return restore_weights(env, &seen, weights);
    }
    blue_green(session, pipeline, env, opts, &seen, weights).await
}

/// What every way back is decided from: the environment's records, the app's instances, and the history of what
/// was live that the records tell.
struct Seen {
    /// The record of the run making the plan, still open (see [`seeing`]).
    open: Option<Record>,
    records: Vec<Record>,
    instances: Vec<Instance>,
    stack: Vec<LiveRelease>,
}

fn nothing(env: &Environment, what: String) -> Error {
    NotFound::RollbackTarget { env: env.name.to_string(), what }.into()
}

/// In place: the previous commit, promoted again.
async fn in_place(session: &Session, pipeline: &Pipeline, env: &Environment, opts: &PromoteOptions, seen: &Seen) -> Result<RollbackPlan> {
    let (stack, instances) = (&seen.stack, &seen.instances);
    let nothing = |what: String| nothing(env, what);
    let cluster = &env.clusters()[0];
    if let Some(settings) = cluster.asg() {
        return asg_in_place(session, pipeline, env, cluster, &settings, opts, seen).await;
    }
    // A promote stopped between batches (an alarm) leaves two commits serving: going back is to the one live
    // before it, the top of the history (the stopped promote is not in it).
    let stopped = crate::model::ledger::stopped_between_batches(&seen.records).filter(|_| commit_of(env, cluster, instances).is_none());
    let current = match &stopped {
        Some(c) => c.clone(),
        None => commit_of(env, cluster, instances).or_else(|| emptied(env, cluster, instances, stack)).ok_or_else(|| {
            if world::cluster_instances(instances, env, cluster).is_empty() {
                nothing(format!("no release is live yet (cluster {} runs nothing)", cluster.name))
            } else {
                nothing(format!("cluster {} runs no single commit", cluster.name))
            }
        })?,
    };
    let target = match &stopped {
        Some(_) => stack.last(),
        None => rollback_target(stack, &current),
    }
    .ok_or_else(|| nothing(format!("the ledger holds no release live before {}", sha(&current))))?
    .clone();
    let popts = PromoteOptions { cluster: Some(cluster.name.to_string()), ..opts.clone() };
    require_ami(session, pipeline, &target.commit).await?;
    let mut world = promote::observe(session, pipeline, env, &target.commit, &popts).await?;
    world.records = seeing(std::mem::take(&mut world.records), seen.open.as_ref());
    let p = promote::plan_from(pipeline, env, &target.commit, &popts, &world, "rollback")?;
    let summary = format!("roll {} back from {} to {} on {} (promoting it in place)", env.name, sha(&current), sha(&target.commit), cluster.name);
    Ok(RollbackPlan {
        env: env.name.clone(),
        path: RollbackPath::InPlace,
        from_commit: Some(current.clone()),
        from_cluster: Some(cluster.name.clone()),
        to_commit: target.commit.clone(),
        cluster: cluster.name.clone(),
        from_weights: None,
        to_weights: None,
        promote: Some(p),
        groups: None,
        next: below(stack, &current).get(1).map(|r| r.commit.clone()),
        history: below(stack, &current),
        summary,
    })
}

/// In place on an asg cluster: the serving group tells what is live (disabled groups keep running, so the
/// instances do not). Inside the rollback window the previous release's disabled group is enabled again and the
/// serving one disabled (nothing launched); outside it, the previous commit is promoted as a new group.
async fn asg_in_place(session: &Session, pipeline: &Pipeline, env: &Environment, cluster: &Cluster, settings: &crate::model::pipeline::AsgSettings, opts: &PromoteOptions, seen: &Seen) -> Result<RollbackPlan> {
    let nothing = |what: String| nothing(env, what);
    let cloud = &session.cloud;
    let all = cloud.groups.app_groups(&pipeline.app).await?;
    let groups = crate::observe::groups::cluster_groups(&all, &pipeline.app, env, cluster);
    let serving = groups.serving().ok_or_else(|| nothing(format!("no release is live yet (cluster {} serves no group)", cluster.name)))?;
    let commit_tag = |g: &crate::ports::Group| g.tags.get(crate::ports::tags::COMMIT).and_then(|c| CommitSha::parse(c).ok());
    let current = commit_tag(serving).ok_or_else(|| nothing(format!("group {} carries no commit", serving.name)))?;
    let target = rollback_target(&seen.stack, &current).ok_or_else(|| nothing(format!("the ledger holds no release live before {}", sha(&current))))?.clone();
    let now = cloud.clock.now();
    // A rollback that died after enabling the group left it attached beside the serving one: it is taken again.
    let still_attached = groups.attached.iter().skip(1).find(|g| commit_tag(g).as_ref() == Some(&target.commit));
    let in_window = groups.disabled.iter().find(|d| commit_tag(&d.group).as_ref() == Some(&target.commit) && now.since(d.since) < settings.rollback_window);
    let keep = still_attached.map(|g| crate::observe::groups::Disabled { group: g.clone(), since: now }).or_else(|| in_window.cloned());
    let (path, promote, switch, how) = match keep.as_ref() {
        Some(d) => {
            // The min it had before it was disabled, as the promote that disabled it recorded.
            let recorded = seen.records.iter().filter_map(|r| r.promote_details()).filter_map(|p| p.groups.as_ref()).find(|g| g.replaced.as_deref() == Some(d.group.name.as_str())).and_then(|g| g.replaced_min);
            let desired = serving.capacity.desired;
            let left = settings.rollback_window.saturating_sub(now.since(d.since));
            let switch = GroupSwitch {
                enable: d.group.name.clone(),
                disable: serving.name.clone(),
                desired,
                min: recorded.unwrap_or(settings.min).min(desired.max(d.group.capacity.desired)),
                window_left: left,
            };
            let how = format!("enabling its group {} again, {} left of its window; nothing is launched", d.group.name, crate::model::clock::format_duration(std::time::Duration::from_secs(left.as_secs())));
            (RollbackPath::EnableGroup, None, Some(switch), how)
        }
        None => {
            let popts = PromoteOptions { cluster: Some(cluster.name.to_string()), ..opts.clone() };
            require_ami(session, pipeline, &target.commit).await?;
            let mut world = promote::observe(session, pipeline, env, &target.commit, &popts).await?;
            world.records = seeing(std::mem::take(&mut world.records), seen.open.as_ref());
            let p = promote::plan_from(pipeline, env, &target.commit, &popts, &world, "rollback")?;
            (RollbackPath::InPlace, Some(p), None, "promoting it as a new group: no disabled group of it is inside its rollback window".to_owned())
        }
    };
    let summary = format!("roll {} back from {} to {} on {} ({how})", env.name, sha(&current), sha(&target.commit), cluster.name);
    Ok(RollbackPlan {
        env: env.name.clone(),
        path,
        from_commit: Some(current.clone()),
        from_cluster: Some(cluster.name.clone()),
        to_commit: target.commit.clone(),
        cluster: cluster.name.clone(),
        from_weights: None,
        to_weights: None,
        promote,
        groups: switch,
        next: below(&seen.stack, &current).get(1).map(|r| r.commit.clone()),
        history: below(&seen.stack, &current),
        summary,
    })
}

/// Traffic split over clusters (a gradual shift): the weights from before the shift, no instance touched.
fn restore_weights(env: &Environment, seen: &Seen, weights: Weights) -> Result<RollbackPlan> {
    let (records, instances) = (&seen.records, &seen.instances);
    let nothing = |what: String| nothing(env, what);
    let restore = weights_before_shift(records, &weights).or_else(|| crate::model::ledger::weights_before(records)).ok_or_else(|| {
        Error::from(NotFound::WeightsBeforeShift { env: env.name.to_string(), shares: weights.describe_shares() })
    })?;
    let back_to = restore.primary().cloned().ok_or_else(|| nothing("no weights to restore".into()))?;
    let back_cluster = env.cluster(back_to.as_str())?;
    let to_commit = commit_of(env, back_cluster, instances)
        .ok_or_else(|| nothing(format!("cluster {back_to}, which took the traffic before the shift, runs no single commit")))?;
    let canary = weights.live().into_iter().find(|c| **c != back_to).cloned();
    let from_commit = canary.as_ref().and_then(|c| env.cluster(c.as_str()).ok()).and_then(|c| commit_of(env, c, instances));
    let summary = format!(
        "roll {} back from the shift ({}) to the weights before it ({}): {} on {}; no instance is touched",
        env.name,
        weights.describe_shares(),
        restore.describe_shares(),
        sha(&to_commit),
        back_to
    );
    // Restoring the weights puts `to_commit` back in front: a further rollback steps back from there.
    let next = below(&seen.stack, &to_commit).first().map(|r| r.commit.clone());
    Ok(RollbackPlan {
        env: env.name.clone(),
        path: RollbackPath::RestoreWeights,
        from_commit,
        from_cluster: canary,
        to_commit,
        cluster: back_to,
        from_weights: Some(weights.clone()),
        to_weights: Some(restore),
        promote: None,
        groups: None,
        next,
        history: Vec::new(),
        summary,
    })
}

/// Blue/green with one live cluster: back to the release live before the current one, by one switch when an idle
/// cluster still runs it healthy, else by a promote of it to the idle cluster and then a switch.
async fn blue_green(session: &Session, pipeline: &Pipeline, env: &Environment, opts: &PromoteOptions, seen: &Seen, weights: Weights) -> Result<RollbackPlan> {
    let (stack, instances) = (&seen.stack, &seen.instances);
    let nothing = |what: String| nothing(env, what);
    let primary = weights.primary().filter(|p| weights.is_live(p)).cloned().ok_or_else(|| nothing("no cluster takes traffic".into()))?;
    let primary_cluster = env.cluster(primary.as_str())?;
    let current = commit_of(env, primary_cluster, instances).or_else(|| emptied(env, primary_cluster, instances, stack)).ok_or_else(|| {
        if world::cluster_instances(instances, env, primary_cluster).is_empty() {
            nothing(format!("no release is live yet (the live cluster {primary} runs nothing)"))
        } else {
            nothing(format!("the live cluster {primary} runs no single commit"))
        }
    })?;
    let target = rollback_target(stack, &current)
        .ok_or_else(|| nothing(format!("the ledger holds no release live before {} on {primary}", sha(&current))))?
        .clone();
    let history = below(stack, &current);

    let mut idle = env.idle_clusters(&weights);
    idle.sort_by_key(|c| Some(&c.name) != target.cluster.as_ref());
    let (path, into, promote) = match still_serving(session, pipeline, env, &idle, &target.commit, instances).await? {
        Some(c) => (RollbackPath::SwitchBack, c, None),
        // Otherwise: promote it to the idle cluster, then switch.
        None => {
            let into = *idle.first().ok_or_else(|| Error::from(Refused::NoIdleToRollBack { env: env.name.to_string() }))?;
            let popts = PromoteOptions { cluster: Some(into.name.to_string()), ..opts.clone() };
            require_ami(session, pipeline, &target.commit).await?;
            let mut world = promote::observe(session, pipeline, env, &target.commit, &popts).await?;
    world.records = seeing(std::mem::take(&mut world.records), seen.open.as_ref());
            let p = promote::plan_from(pipeline, env, &target.commit, &popts, &world, "rollback")?;
            (RollbackPath::PromoteThenSwitch, into, Some(p))
        }
    };
    let to = weights.all_to(&into.name);
    let how = match path {
        RollbackPath::SwitchBack => "it still runs there, healthy: one switch",
        _ => "promoting it there first, then one switch",
    };
    let summary = format!("roll {} back from {} on {} to {} on {} ({how})", env.name, sha(&current), primary, sha(&target.commit), into.name);
    Ok(RollbackPlan {
        env: env.name.clone(),
        path,
        from_commit: Some(current),
        from_cluster: Some(primary),
        to_commit: target.commit,
        cluster: into.name.clone(),
        from_weights: Some(weights),
        to_weights: Some(to),
        promote,
        groups: None,
        next: history.get(1).map(|r| r.commit.clone()),
        history,
        summary,
    })
}

/// What `cluster` should run when it runs nothing at all although the ledger's history says a release is live on
/// it: its fleet was terminated outside `release` (the incident a rollback is for). Going back starts from that
/// release, as if it still ran; a cluster never deployed has no such history.
fn emptied(env: &Environment, cluster: &Cluster, instances: &[Instance], stack: &[LiveRelease]) -> Option<CommitSha> {
    if !world::cluster_instances(instances, env, cluster).is_empty() {
        return None;
    }
    stack.last().filter(|r| r.cluster.as_ref() == Some(&cluster.name)).map(|r| r.commit.clone())
}

/// The first idle cluster (the target's own first) that still runs `commit`, healthy: a switch back to it is enough.
async fn still_serving<'e>(session: &Session, pipeline: &Pipeline, env: &Environment, idle: &[&'e Cluster], commit: &CommitSha, instances: &[Instance]) -> Result<Option<&'e Cluster>> {
    let cloud = &session.cloud;
    for c in idle {
        if commit_of(env, c, instances).as_ref() != Some(commit) {
            continue;
        }
        let health = cloud.balancer.health(&c.target).await.map_err(|e| world::lb_missing(env, c, e))?;
        let members: Vec<_> = health.iter().map(|h| h.id.clone()).collect();
        let others = world::describe_others(cloud, &members, instances).await?;
        if readiness(&pipeline.app, env, c, instances, &health, &others).is_ready() {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// The releases below `current` on the stack, newest first.
fn below(stack: &[LiveRelease], current: &CommitSha) -> Vec<LiveRelease> {
    match stack.iter().rposition(|r| &r.commit == current) {
        Some(i) => stack[..i].iter().rev().cloned().collect(),
        None => Vec::new(),
    }
}

/// Refuses early, with the way out, when the release to go back to has lost its AMI.
async fn require_ami(session: &Session, pipeline: &Pipeline, commit: &CommitSha) -> Result<()> {
    let images = session.cloud.images.app_images(&pipeline.app).await?;
    if crate::observe::images::find_ami(&images, commit).is_none() {
        return Err(NotFound::PreviousAmi { commit: commit.to_string() }.into());
    }
    Ok(())
}

/// Rolls back under one lock: plans again under it (refusing when the target differs from the `confirmed` plan),
/// then restores the weights, switches back, or promotes and switches, recording one `rollback`.
pub async fn rollback(session: &Session, pipeline: &Pipeline, env: &Environment, opts: &PromoteOptions, confirmed: Option<&RollbackPlan>) -> Result<RollbackReport> {
    let spec = OpSpec::new(format!("rollback of {}", env.name))
        .waiting(opts.wait, crate::engine::queue::TicketSpec { action: crate::model::ledger::TicketAction::Rollback, commit: None, cluster: None });
    runner::run(session, pipeline, env, spec, async |op: &mut Op<'_>| {
        let plan = plan(op.session(), pipeline, env, opts).await?;
        if let Some(c) = confirmed {
            if c.to_commit != plan.to_commit || c.cluster != plan.cluster || c.path != plan.path {
                return Err(Refused::PlanChanged { command: "rollback", then: c.summary.clone(), now: plan.summary.clone() }.into());
            }
        }
        under_lock(op, &plan, opts).await
    })
    .await
}

/// A rollback's writes, under the lock its plan was made under.
async fn under_lock(op: &mut Op<'_>, plan: &RollbackPlan, opts: &PromoteOptions) -> Result<RollbackReport> {
    if let Some(to) = &plan.to_weights {
        crate::observe::balancers::check_records(op.cloud(), op.env(), to).await?;
    }
    let report = apply(op, plan, opts).await?;
    // A rollout whose process died is over: this rollback went back from it.
    let records = op.recent_records().await?;
    crate::steps::records::close_dead(op, &records).await?;
    Ok(report)
}

/// In place, after the promote's `after_traffic` hook failed with `rollback_on_hook_failure = true`: rolls back
/// inside the promote's run, under its lock (nobody can come in between), as the next operation of the run with a
/// record of its own; then the promote's record closes once, as what the command was: `rolled-back` naming the
/// rollback's release, or `failed` when the rollback failed too. Always an error (the deploy failed).
pub async fn after_hook(op: &mut Op<'_>, hook: &crate::model::hook::HookResult, rep: &PromoteReport, opts: &PromoteOptions) -> Result<PromoteReport> {
    op.progress(&format!("{}; rolling back", hook.describe()));
    let promote = op.record().cloned();
    let rolled = op
        .then(async |op: &mut Op<'_>| {
            let plan = plan_seeing(op.session(), op.pipeline(), op.env(), opts, promote.as_ref()).await?;
            under_lock(op, &plan, opts).await
        })
        .await;
    let err = match rolled {
        Ok(rb) => {
            let back = Deploy::HookRolledBack { hook: hook.name.to_string(), what: hook.describe(), release_id: rb.release_id, summary: rb.plan.summary };
            // What the promote put in place was taken away again: nothing of it stays to finish.
            op.back_before_no_return();
            op.set_outcome(crate::model::ledger::Outcome::RolledBack);
            Error::from(back).with_rolled_back(true)
        }
        Err(e) => {
            let failed = Deploy::HookRollbackFailed { hook: hook.name.to_string(), what: hook.describe(), why: e.message().to_owned(), kind: e.kind() };
            op.set_outcome(crate::model::ledger::Outcome::Failed);
            e.retold(failed).with_rolled_back(false)
        }
    };
    Err(err.with_report(serde_json::json!({ "release_id": rep.release_id, "hooks": rep.hooks })))
}

async fn apply(op: &mut Op<'_>, plan: &RollbackPlan, opts: &PromoteOptions) -> Result<RollbackReport> {
    let details = RollbackDetails {
        path: plan.path,
        from: plan.from_commit.clone(),
        to: plan.to_commit.clone(),
        commit: Some(plan.to_commit.clone()),
        cluster: plan.cluster.clone(),
        from_weights: plan.from_weights.clone(),
        to_weights: plan.to_weights.clone(),
        promote: plan.promote.as_ref().map(promote::apply::details),
        groups: None,
    };
    let mut report = RollbackReport { release_id: String::new(), plan: plan.clone(), promoted: None, in_sync: true };
    op.progress(&plan.summary);
    // A rollback that died while promoting is resumed: its record is adopted.
    let resume = plan.promote.as_ref().and_then(|p| p.fleet()).and_then(|f| f.resume.clone());
    match resume {
        Some(id) => {
            let records: Vec<Record> =
                op.recent_records().await?;
            let r = records.into_iter().find(|r| r.release_id == id).ok_or_else(|| Error::from(Internal::Invariant { what: format!("the unfinished record {id} vanished") }))?;
            let detail = format!("resumed by run {} after an interruption", op.run_id());
            op.adopt(r, detail).await?;
        }
        None => {
            let mut record = op.draft(Action::Rollback(details));
            // Forced only when it skips a settle wait it would have made.
            record.forced = plan.promote.as_ref().is_some_and(|p| p.safety.forced && p.settle_until().is_some());
            op.open(record).await?;
        }
    }
    report.release_id = op.record().map(|r| r.release_id.to_string()).unwrap_or_default();
    op.step(crate::model::phase::Checkpoint::Recorded)?;
    if let Some(gs) = &plan.groups {
        enable_group(op, gs).await?;
    }
    if let Some(p) = &plan.promote {
        let mut rep = promote::apply::report(p, promote::PromoteOutcome::Succeeded);
        promote::apply::settle(op, p).await?;
        promote::apply::prelude(op, p, &mut rep).await?;
        if let Some(fleet) = p.fleet() {
            let mut d = op.record().and_then(Record::promote_details).cloned().unwrap_or_else(|| promote::apply::details(p));
            let opts = &PromoteOptions { skip_hooks: true, ..opts.clone() };
            let result = match &p.asg {
                Some(asg) => promote::asg::deploy(op, p, asg, fleet, &mut d, &mut rep, opts).await,
                None => promote::deploy(op, p, fleet, &mut d, &mut rep, opts).await,
            };
            if let Ok(r) = op.record_mut() {
                r.set_promote_details(&d);
            }
            rep.new_instances = d.new_instances.clone();
            rep.retired_instances = d.retired_instances.clone();
            result?;
        }
        report.promoted = Some(rep);
    }
    if let (Some(to), true) = (&plan.to_weights, op.env().is_blue_green()) {
        let mut live = world::live_name(op.cloud(), op.env()).await?.ok_or_else(|| Error::from(Internal::Invariant { what: "blue/green without dns".into() }))?;
        // The promote made the cluster healthy; confirm before sending it traffic.
        if plan.path != RollbackPath::RestoreWeights {
            let cluster = op.env().cluster(plan.cluster.as_str())?;
            let instances = crate::observe::groups::serving_instances(op.cloud(), op.pipeline(), op.cloud().fleet.app_instances(&op.pipeline().app).await?).await?;
            let health = op.cloud().balancer.health(&cluster.target).await?;
            let members: Vec<_> = health.iter().map(|h| h.id.clone()).collect();
            let others = world::describe_others(op.cloud(), &members, &instances).await?;
            let ready = readiness(&op.pipeline().app, op.env(), cluster, &instances, &health, &others);
            if !ready.is_ready() {
                let mut why = ready.problems.clone();
                why.extend(ready.strays.iter().map(|s| format!("stray {}", s.describe())));
                return Err(Deploy::NotReadyAfterPromote { cluster: cluster.name.to_string(), problems: why }.into());
            }
        }
        let comment = format!("release rollback {} {}", op.pipeline().app, plan.cluster);
        report.in_sync = crate::steps::dns::flip(op, &mut live, to, &comment, crate::steps::dns::Way::Guarded, Some("Route53 has the change")).await?.in_sync();
    }
    Ok(report)
}

/// Inside an asg cluster's rollback window: the previous release's group is enabled (raised to the serving desired,
/// attached, healthy), then the serving one disabled the way a promote disables it, then the enabled group's min
/// and alarms are restored. A failure before the serving group leaves disables the enabled group again.
async fn enable_group(op: &mut Op<'_>, gs: &GroupSwitch) -> Result<()> {
    use crate::steps::groups;
    // Rollbacks of this kind that died under this lock left their records open: this one carries on from the world.
    let mine = op.record().map(|r| r.release_id.clone());
    for r in op.recent_records().await?.iter().filter(|r| r.outcome == crate::model::ledger::Outcome::Started && Some(&r.release_id) != mine.as_ref()) {
        if let crate::model::ledger::Action::Rollback(d) = &r.action {
            if d.path == RollbackPath::EnableGroup {
                let detail = format!("unfinished; carried on by run {}", op.run_id());
                crate::steps::records::close(op, r, crate::model::ledger::Outcome::Abandoned, None, detail).await?;
            }
        }
    }
    let cluster = op.env().clusters()[0].clone();
    let (target, drain) = (cluster.target.clone(), cluster.deploy.drain);
    let all = op.cloud().groups.app_groups(&op.pipeline().app).await?;
    let find = |n: &str| all.iter().find(|g| g.name == n).cloned().ok_or_else(|| Error::from(NotFound::RollbackTarget { env: op.env().name.to_string(), what: format!("group {n} no longer exists") }));
    let (back, current) = (find(&gs.enable)?, find(&gs.disable)?);
    let mut polls = 0;
    op.guard().await?;
    // Suspended alarms first: nothing may scale the group in while it is being enabled.
    if let Err(e) = groups::enable(op, &back, &target, gs.desired, cluster.deploy.health_timeout, &mut polls).await {
        if e.kind() == crate::model::error::ErrorKind::Crash {
            return Err(e);
        }
        if let Some(now) = groups::read(op, &back.name).await.ok().flatten() {
            let _ = groups::disable(op, &now, &target, drain).await;
        }
        return Err(e);
    }
    op.step(crate::model::phase::Checkpoint::Healthy)?;
    op.guard().await?;
    op.point_of_no_return("the previous release's group serves again and the current one is leaving");
    let min = groups::disable(op, &current, &target, drain).await?;
    op.step(crate::model::phase::Checkpoint::DeregisteredOld)?;
    groups::restore(op, &back.name, gs.min).await?;
    if let Ok(r) = op.record_mut() {
        if let crate::model::ledger::Action::Rollback(d) = &mut r.action {
            d.groups = Some(crate::model::ledger::GroupsDetail {
                template: back.template.as_ref().map(|t| t.id.to_string()).unwrap_or_default(),
                version: back.template.as_ref().map_or(0, |t| t.version.0),
                group: back.name.clone(),
                desired: gs.desired.max(back.capacity.desired),
                replaced: Some(current.name.clone()),
                replaced_min: Some(min),
            });
        }
    }
    op.progress(&format!("group {} serves again; group {} is disabled", back.name, current.name));
    Ok(())
}
