//! Progressive delivery: `release switch <cluster>` in steps (`[env.NAME.rollout]` or `--steps`), each one Route53
//! change batch giving the target its share (the cluster live before gets the rest), then watched for `pause`: the
//! target's health (every instance healthy) and the alarms (one DescribeAlarms call per poll for all of them). An
//! alarm in ALARM, lost health, a `release rollback`, Ctrl-C or a failing call sends the weights back to those from
//! before the rollout in one change; the record says `rolled-back` with the reason.
//!
//! **The journal.** The rollout is one `switch` record whose details carry a [`RolloutState`]: the steps, and the
//! step reached (saved right after its change). A re-run of `switch` (or `rollout continue`) adopts the unfinished
//! record of a dead run and resumes from what Route53 holds: the highest step whose weights are live now (a change
//! made just before a crash, not yet saved, counts), never a lower one.
//!
//! **Holds and requests.** The run holding a rollout has the environment's lock, so no other process may write its
//! record. `release rollout continue` and `release rollback` therefore write a record of their own (a
//! `rollout-request` naming the rollout), which the holder looks for at each poll (one ledger query). When no live
//! run holds the rollout (its process died), `rollout continue` resumes it in its own process past the hold, and
//! `release rollback` restores the weights from before it under the lock, closing its record.

use std::time::Duration;

use serde::Serialize;

use crate::model::clock::{format_duration, Timestamp};
use crate::model::error::{Deploy, Error, ErrorKind, Failure, Input, Internal, LockHeld, NotFound, Refused, Result};
use crate::model::ids::{ClusterName, ReleaseId};
use crate::model::ledger::{Action, Outcome, Progress, Record, RolloutRequestDetails, RolloutRequestKind, RolloutState};
use crate::model::pipeline::{Cluster, Environment, Pipeline, RolloutStep, DEFAULT_ROLLOUT_PAUSE};
use crate::ports::{AlarmStatus, HealthState};
use crate::engine::runner::{self, Op, OpSpec};
use crate::ops::switch::{self, SwitchOptions, SwitchPlan, SwitchReport, SwitchWorld};
use crate::model::weights::Weights;
use crate::observe::world::{self, LiveName};
use crate::model::ledger::unfinished;
use crate::model::ledger::step_name;
use crate::model::ledger::share_before;
use crate::observe::alarms;
use crate::steps::dns::{flip, Way};
use crate::engine::session::Session;

/// What a rollout is asked to be: from the command line over the file.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutSpec {
    /// The steps.
    pub steps: Vec<RolloutStep>,
    /// How long each is watched.
    pub pause: Duration,
    /// The alarms watched.
    pub alarms: Vec<String>,
}

/// One planned step: its share and the weights it sets (a hold sets none).
#[derive(Clone, Debug, Serialize)]
pub struct PlannedStep {
    /// `10`, or `"hold"`.
    pub step: RolloutStep,
    /// The weights after it.
    pub weights: Option<Weights>,
}

/// A rollout's plan (inside the switch plan `--plan` prints).
#[derive(Clone, Debug, Serialize)]
pub struct RolloutPlan {
    /// The steps and their weights.
    pub steps: Vec<PlannedStep>,
    /// Seconds each step is watched.
    pub pause: f64,
    /// The alarms and their state now.
    pub alarms: Vec<AlarmStatus>,
    /// An unfinished rollout of a dead run this one resumes, and the step it is at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumes: Option<(ReleaseId, String)>,
}

/// How a rollout ended (inside the switch report).
#[derive(Clone, Debug, Serialize)]
pub struct RolloutOutcome {
    /// The last step reached (`50%`, `hold`).
    pub reached: String,
    /// Route53 change batches this run submitted (one per step, plus one to go back).
    pub route53_changes: u32,
    /// Whether it went back to the weights from before it.
    pub rolled_back: bool,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether it resumed the record of a dead run.
    pub resumed: bool,
}

/// The rollout a switch asks for, if any: `--steps`, else the environment's `steps`; `--weight` is a plain
/// one-step switch.
pub fn wanted(env: &Environment, opts: &SwitchOptions) -> Result<Option<RolloutSpec>> {
    if opts.weight.is_some() && (opts.steps.is_some() || opts.pause.is_some()) {
        return Err(Input::WeightWithSteps.into());
    }
    if opts.weight.is_some() {
        return Ok(None);
    }
    let file = env.rollout.as_ref();
    let steps = match (&opts.steps, file.filter(|r| !r.steps.is_empty())) {
        (Some(s), _) => s.clone(),
        (None, Some(r)) => r.steps.clone(),
        (None, None) => {
            if opts.pause.is_some() {
                return Err(Input::PauseWithoutSteps { env: env.name.to_string() }.into());
            }
            return Ok(None);
        }
    };
    let pause = opts.pause.or(file.map(|r| r.pause)).unwrap_or(DEFAULT_ROLLOUT_PAUSE);
    let alarms = file.map(|r| r.alarms.clone()).unwrap_or_default();
    Ok(Some(RolloutSpec { steps, pause, alarms }))
}

/// Whether a switch runs as a rollout from the start (an unfinished rollout of a dead run is found by the plain
/// switch under the lock, which hands it to [`body`]).
pub fn applies(env: &Environment, opts: &SwitchOptions) -> Result<bool> {
    Ok(wanted(env, opts)?.is_some())
}

/// The weights of step `i`: a share's own, a hold keeps those of the share before it; `from` before the first.
pub fn step_weights(from: &Weights, target: &ClusterName, steps: &[RolloutStep], i: Option<usize>) -> Result<Weights> {
    let Some(i) = i else { return Ok(from.clone()) };
    match steps[..=i.min(steps.len().saturating_sub(1))].iter().rev().find_map(|s| match s {
        RolloutStep::Percent(p) => Some(*p),
        RolloutStep::Hold => None,
    }) {
        Some(p) => from.after_switch(target, Some(p)),
        None => Ok(from.clone()),
    }
}

/// Where a rollout stands against the weights Route53 holds now: the highest step whose weights are live (a
/// change made right before a crash counts), never below the recorded one. `Err` when the live weights match no
/// step at or after it (someone changed them by hand).
pub fn resume_point(env: &crate::model::ids::EnvName, from: &Weights, target: &ClusterName, state: &RolloutState, current: &Weights) -> Result<Option<usize>> {
    let recorded = state.step;
    let first = recorded.unwrap_or(0);
    let mut at = None;
    if step_weights(from, target, &state.steps, recorded)? == *current {
        at = Some(recorded);
    }
    for i in first..state.steps.len() {
        if matches!(state.steps[i], RolloutStep::Percent(_)) && step_weights(from, target, &state.steps, Some(i))? == *current && Some(i) > at.flatten() {
            at = Some(Some(i));
        }
    }
    at.ok_or_else(|| {
        Refused::WeightsOffSteps { env: env.to_string(), shares: current.describe_shares(), step: step_name(&state.steps, recorded) }.into()
    })
}

/// The switch plan of a rollout (`--plan`): the target must be ready for its first share; the alarms must exist
/// and none may be firing (the switch plan's pre-flight, `preflight::check`, refuses that).
pub fn plan_from(pipeline: &Pipeline, env: &Environment, cluster: &Cluster, opts: &SwitchOptions, spec: &RolloutSpec, w: &SwitchWorld) -> Result<SwitchPlan> {
    let alarms = alarms::require(env, &spec.alarms, &w.alarms)?;
    plan_with(pipeline, env, cluster, opts, spec, w, alarms)
}

fn plan_with(pipeline: &Pipeline, env: &Environment, cluster: &Cluster, opts: &SwitchOptions, spec: &RolloutSpec, w: &SwitchWorld, alarms: Vec<AlarmStatus>) -> Result<SwitchPlan> {
    let first = spec.steps.iter().find_map(|s| match s {
        RolloutStep::Percent(p) => Some(*p),
        RolloutStep::Hold => None,
    });
    // The first step, planned (and pre-flighted) as a one-step switch; `steps` says it is a rollout's.
    let one = SwitchOptions { weight: first, steps: Some(spec.steps.clone()), pause: None, ..opts.clone() };
    let mut plan = switch::plan_from(pipeline, env, cluster, &one, w)?;
    let from = plan.from.clone();
    plan.to = from.after_switch(&cluster.name, Some(100))?;
    plan.changes = plan.to != from;
    let mut steps = Vec::new();
    for (i, s) in spec.steps.iter().enumerate() {
        let weights = match s {
            RolloutStep::Percent(_) => Some(step_weights(&from, &cluster.name, &spec.steps, Some(i))?),
            RolloutStep::Hold => None,
        };
        steps.push(PlannedStep { step: *s, weights });
    }
    plan.rollout = Some(RolloutPlan { steps, pause: spec.pause.as_secs_f64(), alarms, resumes: None });
    Ok(plan)
}

/// What the watch of a step ended with.
enum Watched {
    /// The pause ran out (or `rollout continue` cut it short), all well.
    Passed,
    /// Go back, for this reason.
    Revert(String),
}

/// The rollout in a run: what it needs at every step.
struct Ctx<'a> {
    cluster: &'a Cluster,
    from: Weights,
    state: RolloutState,
    record_started: Timestamp,
    release_id: ReleaseId,
    changes: u32,
}

/// Runs (or resumes) a rollout to `cluster` under the environment's lock.
pub async fn run(session: &Session, pipeline: &Pipeline, env: &Environment, cluster: &Cluster, opts: &SwitchOptions, confirmed: Option<&SwitchPlan>) -> Result<SwitchReport> {
    run_inner(session, pipeline, env, cluster, opts, confirmed, false).await
}

#[allow(clippy::too_many_arguments)]
async fn run_inner(
    session: &Session,
    pipeline: &Pipeline,
    env: &Environment,
    cluster: &Cluster,
    opts: &SwitchOptions,
    confirmed: Option<&SwitchPlan>,
    past_hold: bool,
) -> Result<SwitchReport> {
    let started = session.cloud.clock.now();
    let spec = OpSpec::new(format!("rollout of {} to {}", env.name, cluster.name))
        .waiting(opts.wait, crate::engine::queue::TicketSpec { action: crate::model::ledger::TicketAction::Switch, commit: None, cluster: Some(cluster.name.clone()) });
    runner::run(session, pipeline, env, spec, async |op: &mut Op<'_>| {
        let w = switch::observe(op.cloud(), pipeline, env, cluster).await?;
        body(op, cluster, opts, confirmed, past_hold, started, w).await
    })
    .await
}

/// The rollout under the lock, from what `switch::observe` read: resumes the unfinished rollout of a dead run, or
/// starts one as `opts` asks. A plain switch calls it too when it finds an unfinished rollout (resumed, or refused
/// when it went to another cluster).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn body(
    op: &mut Op<'_>,
    cluster: &Cluster,
    opts: &SwitchOptions,
    confirmed: Option<&SwitchPlan>,
    past_hold: bool,
    started: Timestamp,
    w: SwitchWorld,
) -> Result<SwitchReport> {
    let Begun { mut ctx, mut plan, start, resumed } = match unfinished(&w.records) {
        Some(found) => resume(op, cluster, opts, &w, found).await?,
        None => match begin(op, cluster, opts, confirmed, &w).await? {
            Begin::Steps(begun) => begun,
            Begin::Unchanged(report) => return Ok(report),
        },
    };
    plan.forced = opts.force;
    let mut live = w.live.clone();
    let result = steps(op, &mut ctx, &mut live, start, past_hold).await;
    let report = SwitchReport { release_id: ctx.release_id.to_string(), changed: true, ..SwitchReport::unchanged(plan, false) };
    conclude(op, &mut ctx, &mut live, report, result, started, resumed).await
}

/// A rollout whose record is open, ready for its steps.
struct Begun<'c> {
    ctx: Ctx<'c>,
    plan: SwitchPlan,
    /// Where the steps begin: `(fresh, start)`, `fresh` when no step was taken yet.
    start: (bool, usize),
    /// Whether it resumed the record of a dead run.
    resumed: bool,
}

/// How a new rollout begins.
enum Begin<'c> {
    /// With its steps.
    Steps(Begun<'c>),
    /// Not at all: the weights already are where it goes.
    Unchanged(SwitchReport),
}

/// Adopts the unfinished rollout of a dead run (refused when it went to another cluster), at the step Route53
/// holds now.
async fn resume<'c>(
    op: &mut Op<'_>,
    cluster: &'c Cluster,
    opts: &SwitchOptions,
    w: &SwitchWorld,
    (r, s, st): (&Record, &crate::model::ledger::SwitchDetails, &RolloutState),
) -> Result<Begun<'c>> {
    let (pipeline, env) = (op.pipeline(), op.env());
    if s.cluster != cluster.name {
        return Err(Refused::RolloutUnfinished {
            release_id: r.release_id.to_string(),
            env: env.name.to_string(),
            cluster: s.cluster.to_string(),
            step: step_name(&st.steps, st.step),
        }
        .into());
    }
    let at = resume_point(&env.name, &s.from, &cluster.name, st, &w.live.weights)?;
    let mut state = st.clone();
    let same = at == st.step;
    state.step = at;
    if !same {
        // Route53 took a step whose record was not saved.
        state.holding = false;
    }
    // Nobody watched the step while its process was dead: its pause starts afresh now, whatever was left
    // of it (a pause that ran out unwatched is no evidence the step is fine).
    state.since = Some(op.cloud().clock.now());
    let (record, details) = (r.clone(), s.clone());
    let detail = format!("resumed at step {} by run {} after its process died", step_name(&state.steps, at), op.run_id());
    op.progress(&format!("resuming rollout {} of env {} to {} at step {}", record.release_id, env.name, cluster.name, step_name(&state.steps, at)));
    let spec = RolloutSpec { steps: state.steps.clone(), pause: Duration::from_secs_f64(state.pause), alarms: state.alarms.clone() };
    let alarms = alarms::require(env, &spec.alarms, &alarms::read(op.cloud(), &spec.alarms).await?)?;
    // A resumed rollout is not refused for an alarm firing: its watch goes back at once, which is what it
    // then needs (refusing would leave the traffic where the dead run left it).
    let unwatched = SwitchWorld { alarms: Vec::new(), ..w.clone() };
    let mut plan = plan_with(pipeline, env, cluster, &SwitchOptions { force: true, ..opts.clone() }, &spec, &unwatched, alarms)?;
    plan.from = details.from.clone();
    plan.to = details.to.clone();
    plan.changes = true;
    if let Some(rp) = plan.rollout.as_mut() {
        rp.resumes = Some((record.release_id.clone(), step_name(&state.steps, at)));
    }
    op.adopt(record.clone(), detail).await?;
    if let Ok(rec) = op.record_mut() {
        if let Action::Switch(d) = &mut rec.action {
            d.rollout = Some(state.clone());
        }
    }
    op.save().await?;
    let ctx = Ctx { cluster, from: details.from.clone(), state, record_started: record.started, release_id: record.release_id.clone(), changes: 0 };
    Ok(Begun { ctx, plan, start: (at.is_none(), at.unwrap_or_default()), resumed: true })
}

/// Starts the rollout `opts` asks for (refused when the weights changed since the `confirmed` plan), closing what
/// dead runs left unfinished first.
async fn begin<'c>(op: &mut Op<'_>, cluster: &'c Cluster, opts: &SwitchOptions, confirmed: Option<&SwitchPlan>, w: &SwitchWorld) -> Result<Begin<'c>> {
    let (pipeline, env) = (op.pipeline(), op.env());
    let spec = wanted(env, opts)?.ok_or_else(|| Error::from(Internal::Invariant { what: "a rollout without steps".into() }))?;
    let plan = plan_from(pipeline, env, cluster, opts, &spec, w)?;
    super::unchanged_since(confirmed, &plan)?;
    super::gates(op, &plan, opts, &w.records).await?;
    crate::steps::records::close_unfinished(op, &w.records, &w.live.weights).await?;
    if !plan.changes {
        return Ok(Begin::Unchanged(SwitchReport::unchanged(plan, false)));
    }
    let state = RolloutState { steps: spec.steps.clone(), pause: spec.pause.as_secs_f64(), alarms: spec.alarms.clone(), step: None, since: None, holding: false, reason: None };
    let mut record = op.draft(Action::Switch(plan.details(Some(state.clone()))));
    record.forced = plan.forced && (!plan.problems.is_empty() || !plan.strays.is_empty());
    let (rid, rstarted) = (record.release_id.clone(), record.started);
    op.open(record).await?;
    op.step(crate::model::phase::Checkpoint::Recorded)?;
    let ctx = Ctx { cluster, from: plan.from.clone(), state, record_started: rstarted, release_id: rid, changes: 0 };
    Ok(Begin::Steps(Begun { ctx, plan, start: (true, 0), resumed: false }))
}

/// How the steps ended, as the report and the record say it: passed (then the `after_traffic` hook), sent back by
/// the watch, or stopped by an error (going back first, unless past the point of no return or the lock was lost).
async fn conclude(
    op: &mut Op<'_>,
    ctx: &mut Ctx<'_>,
    live: &mut LiveName,
    mut report: SwitchReport,
    result: Result<Watched>,
    started: Timestamp,
    resumed: bool,
) -> Result<SwitchReport> {
    let outcome = |ctx: &Ctx<'_>, rolled_back: bool, reason: Option<String>| RolloutOutcome {
        reached: step_name(&ctx.state.steps, ctx.state.step),
        route53_changes: ctx.changes,
        rolled_back,
        reason,
        resumed,
    };
    match result {
        Ok(Watched::Passed) => {
            report.rollout = Some(outcome(ctx, false, None));
            // The target takes all the traffic now: the same `after_traffic` as a one-step switch (a failure goes
            // back to the weights from before the rollout, `report.plan.from`, in one Route53 change).
            crate::ops::switch::hooks::after_switch(op, &report.plan).await?;
            report.hooks = op.record().map(|r| r.hooks.clone()).unwrap_or_default();
            report.seconds = op.cloud().clock.now().since(started).as_secs_f64();
            Ok(report)
        }
        Ok(Watched::Revert(reason)) => {
            op.progress(&format!("rolling back: {reason}"));
            revert(op, ctx, live, &reason).await?;
            ctx.state.reason = Some(reason.clone());
            if let Ok(r) = op.record_mut() {
                r.detail = Some(reason.clone());
                r.rolled_back = Some(true);
                if let Action::Switch(d) = &mut r.action {
                    d.rollout = Some(ctx.state.clone());
                }
            }
            op.set_outcome(Outcome::RolledBack);
            report.rollout = Some(outcome(ctx, true, Some(reason)));
            report.seconds = op.cloud().clock.now().since(started).as_secs_f64();
            Ok(report)
        }
        Err(e) if matches!(e.kind(), ErrorKind::Crash) || op.lock_lost() || op.past_no_return() => Err(e),
        Err(e) => {
            // Ctrl-C, or a call that failed for good: go back before saying so.
            let why = if e.kind() == ErrorKind::Interrupted { "interrupted".to_owned() } else { e.message().to_owned() };
            let back = ctx.from.describe_shares();
            op.progress(&format!("putting env {} back to the weights from before the rollout ({back})", op.env().name));
            let at = step_name(&ctx.state.steps, ctx.state.step);
            match revert(op, ctx, live, &why).await {
                Ok(()) => {
                    let kind = e.kind();
                    let stopped = Deploy::RolloutStopped { env: op.env().name.to_string(), cluster: ctx.cluster.name.to_string(), step: at, why, kind, back };
                    Err(e.retold(stopped).with_rolled_back(true))
                }
                Err(re) => Err(e.context(format!("and going back failed too ({})", re.message())).with_rolled_back(false)),
            }
        }
    }
}

/// The steps from `start` on. `(fresh, start)`: `fresh` when no step was taken yet.
async fn steps(op: &mut Op<'_>, ctx: &mut Ctx<'_>, live: &mut LiveName, (fresh, start): (bool, usize), past_hold: bool) -> Result<Watched> {
    let n = ctx.state.steps.len();
    let comment = format!("release switch {} {} (rollout)", op.pipeline().app, ctx.cluster.name);
    let mut i = start;
    // Resuming at a step already taken: finish its watch (or hold) first.
    let mut taken = !fresh;
    while i < n {
        let step = ctx.state.steps[i];
        if !taken {
            match step {
                RolloutStep::Percent(p) => {
                    let to = step_weights(&ctx.from, &ctx.cluster.name, &ctx.state.steps, Some(i))?;
                    op.progress(&format!("step {}/{}: {p}% to {}", i + 1, n, ctx.cluster.name));
                    flip(op, live, &to, &comment, Way::Guarded, None).await?;
                    ctx.changes += 1;
                    // Route53 has the step, the record not yet: a crash here is resumed from the weights.
                    op.step(crate::model::phase::Checkpoint::ChangedStep(p))?;
                    if i + 1 == n {
                        op.point_of_no_return("Route53 has the last step");
                    }
                    ctx.state.holding = false;
                }
                RolloutStep::Hold => {
                    ctx.state.holding = !past_hold;
                }
            }
            ctx.state.step = Some(i);
            ctx.state.since = Some(op.cloud().clock.now());
            save_state(op, ctx).await?;
            op.step(match step {
                RolloutStep::Percent(p) => crate::model::phase::Checkpoint::Step(p),
                RolloutStep::Hold => crate::model::phase::Checkpoint::Hold,
            })?;
        }
        taken = false;
        if i + 1 == n {
            break;
        }
        let hold = step == RolloutStep::Hold && ctx.state.holding && !past_hold;
        if hold {
            op.progress(&format!(
                "holding at {} (the lock of env {} stays taken and is renewed): `release rollout continue --env {}` goes on, `release rollback --env {}` goes back",
                share_before(&ctx.state.steps, i),
                op.env().name,
                op.env().name,
                op.env().name
            ));
        }
        let until = if hold {
            None
        } else {
            let since = ctx.state.since.unwrap_or_else(|| op.cloud().clock.now());
            let pause = if step == RolloutStep::Hold { Duration::ZERO } else { Duration::from_secs_f64(ctx.state.pause) };
            Some(since.add(pause))
        };
        if let Watched::Revert(why) = watch(op, ctx, until).await? {
            return Ok(Watched::Revert(why));
        }
        if hold {
            ctx.state.holding = false;
            save_state(op, ctx).await?;
            op.progress(&format!("going on from the hold at {}", share_before(&ctx.state.steps, i)));
        }
        i += 1;
    }
    Ok(Watched::Passed)
}

async fn save_state(op: &mut Op<'_>, ctx: &Ctx<'_>) -> Result<()> {
    if let Ok(r) = op.record_mut() {
        if let Action::Switch(d) = &mut r.action {
            d.rollout = Some(ctx.state.clone());
        }
    }
    op.save().await
}

/// Watches the target until `until` (`None`: a hold, until a request): one DescribeAlarms call, one health call
/// and one ledger query per poll.
async fn watch(op: &mut Op<'_>, ctx: &mut Ctx<'_>, until: Option<Timestamp>) -> Result<Watched> {
    let at = step_name(&ctx.state.steps, ctx.state.step);
    let at_share = match ctx.state.step.and_then(|i| ctx.state.steps.get(i)) {
        Some(RolloutStep::Hold) => share_before(&ctx.state.steps, ctx.state.step.unwrap_or(0)),
        _ => at.clone(),
    };
    // Where it stands, for a reason: `at step 50%`, `during the hold at 10%`.
    let place = match ctx.state.step.and_then(|i| ctx.state.steps.get(i)) {
        Some(RolloutStep::Hold) => format!("during the hold at {at_share}"),
        _ => format!("at step {at}"),
    };
    let mut last_line = String::new();
    let mut last_shown: Option<Timestamp> = None;
    loop {
        let now = op.cloud().clock.now();
        if let Some(why) = crate::steps::watch::alarm_breach(op, &ctx.state.alarms).await? {
            return Ok(Watched::Revert(format!("{why} {place}")));
        }
        let health = match op.cloud().balancer.health(&ctx.cluster.target).await {
            Ok(h) => h,
            // Its load balancer was deleted: the target cannot serve its share; going back is the answer, as for
            // lost health (the record says `rolled-back`, not `failed`).
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(Watched::Revert(format!("cluster {} lost its load balancer {place}: {}", ctx.cluster.name, e.message())));
            }
            Err(e) => return Err(e),
        };
        let healthy = health.iter().filter(|h| h.state == HealthState::Healthy).count();
        let sick: Vec<String> = health.iter().filter(|h| h.state != HealthState::Healthy).map(|h| format!("{} is {:?}", h.id, h.state)).collect();
        if !sick.is_empty() || healthy < ctx.cluster.count as usize {
            let what = if sick.is_empty() { format!("{healthy} of {} instances healthy", ctx.cluster.count) } else { sick.join(", ") };
            return Ok(Watched::Revert(format!("cluster {} lost health {place}: {what}", ctx.cluster.name)));
        }
        let records = op.recent_records().await?;
        for r in &records {
            let Action::RolloutRequest(q) = &r.action else { continue };
            if q.rollout != ctx.release_id || r.started < ctx.record_started {
                continue;
            }
            match q.request {
                RolloutRequestKind::Rollback => return Ok(Watched::Revert(format!("rolled back by {} (`release rollback`) {place}", r.actor))),
                RolloutRequestKind::Continue if ctx.state.since.is_none_or(|s| r.started >= s) => {
                    op.progress(&format!("{} asked to go on (`release rollout continue`)", r.actor));
                    return Ok(Watched::Passed);
                }
                RolloutRequestKind::Continue => {}
            }
        }
        let alarms = if ctx.state.alarms.is_empty() { String::new() } else { format!("; alarms OK ({})", ctx.state.alarms.len()) };
        let waiting = match until {
            None => format!("holding at {at_share}: healthy {healthy}/{}{alarms}", ctx.cluster.count),
            Some(_) => format!("watching step {at}: healthy {healthy}/{}{alarms}", ctx.cluster.count),
        };
        op.report(Progress { phase: crate::model::phase::Phase::Rollout, waiting_for: Some(waiting.clone()), phase_started: ctx.state.since, ..Default::default() }).await?;
        let left = until.map(|u| u.since(now));
        if until.is_some_and(|u| now >= u) {
            return Ok(Watched::Passed);
        }
        // A line when something changes, and a countdown every 30 s.
        if waiting != last_line || last_shown.is_none_or(|t| now.since(t) >= Duration::from_secs(30)) {
            match left {
                Some(l) => op.progress(&format!("{waiting}; {} left", format_duration(Duration::from_secs(l.as_secs().max(1))))),
                None => op.progress(&waiting),
            }
            last_line = waiting;
            last_shown = Some(now);
        }
        let poll = op.session().poll;
        let wait = left.map_or(poll, |l| l.min(poll));
        op.pause(wait).await?;
    }
}

/// One change back to the weights from before the rollout.
async fn revert(op: &mut Op<'_>, ctx: &mut Ctx<'_>, live: &mut LiveName, why: &str) -> Result<()> {
    let comment = format!("release rollout back: {why}");
    let comment: String = comment.chars().take(256).collect();
    let from = ctx.from.clone();
    let before = live.weights.clone();
    flip(op, live, &from, &comment, Way::Revert, None).await?;
    if before != from {
        ctx.changes += 1;
    }
    Ok(())
}

/// `release rollout status`: where the environment's rollout stands.
#[derive(Clone, Debug, Serialize)]
pub struct RolloutStatus {
    /// The environment.
    pub env: String,
    /// Whether a rollout is under way (or waits for a re-run: `running` false).
    pub in_progress: bool,
    /// The rollout's release id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_id: Option<String>,
    /// Its target cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Its steps.
    pub steps: Vec<RolloutStep>,
    /// The step reached (`10%`, `hold at 10%`, `start`).
    pub step: String,
    /// Its index (1-based) and the number of steps.
    pub step_number: Option<usize>,
    /// Waiting at a hold.
    pub holding: bool,
    /// Seconds left in the pause of the step.
    pub seconds_left: Option<f64>,
    /// The weights Route53 holds now, as shares.
    pub weights: String,
    /// The alarms and their state now.
    pub alarms: Vec<AlarmStatus>,
    /// Healthy instances of the target / its count.
    pub healthy: Option<(usize, u32)>,
    /// Whether a live run holds it (false: its process died; `release switch <cluster>` or `rollout continue`
    /// resumes it).
    pub running: bool,
    /// Who holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// The outcome of the last rollout when none is under way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
}

/// Reads where the rollout of `env` stands: one ledger query, one lock read, one record listing, one
/// DescribeAlarms call and one health query.
pub async fn status(session: &Session, pipeline: &Pipeline, env: &Environment) -> Result<RolloutStatus> {
    let cloud = &session.cloud;
    let live = world::live_name(cloud, env).await?;
    let weights = live.as_ref().map(|l| l.weights.describe_shares()).unwrap_or_default();
    let records = crate::engine::session::recent_records(cloud, pipeline, &env.name).await?;
    let now = cloud.clock.now();
    let mut st = RolloutStatus {
        env: env.name.to_string(),
        in_progress: false,
        release_id: None,
        cluster: None,
        steps: Vec::new(),
        step: String::new(),
        step_number: None,
        holding: false,
        seconds_left: None,
        weights,
        alarms: Vec::new(),
        healthy: None,
        running: false,
        holder: None,
        last: None,
    };
    let Some((r, s, state)) = unfinished(&records) else {
        let last = records.iter().find_map(|r| match &r.action {
            Action::Switch(s) if s.rollout.is_some() => Some((r, s)),
            _ => None,
        });
        if let Some((r, s)) = last {
            st.release_id = Some(r.release_id.to_string());
            st.cluster = Some(s.cluster.to_string());
            st.steps = s.rollout.as_ref().map(|x| x.steps.clone()).unwrap_or_default();
            st.step = s.rollout.as_ref().map(|x| step_name(&x.steps, x.step)).unwrap_or_default();
            st.last = Some(match &r.detail {
                Some(d) => format!("{} ({d})", r.outcome.as_str()),
                None => r.outcome.as_str().to_owned(),
            });
        }
        let alarms: Vec<String> = env.rollout.as_ref().map(|r| r.alarms.clone()).unwrap_or_default();
        st.alarms = alarms::read(cloud, &alarms).await?;
        return Ok(st);
    };
    st.in_progress = true;
    st.release_id = Some(r.release_id.to_string());
    st.cluster = Some(s.cluster.to_string());
    st.steps = state.steps.clone();
    st.step = step_name(&state.steps, state.step);
    st.step_number = state.step.map(|i| i + 1);
    st.holding = state.holding;
    if !state.holding {
        if let (Some(since), Some(RolloutStep::Percent(_))) = (state.since, state.step.and_then(|i| state.steps.get(i))) {
            let end = since.add(Duration::from_secs_f64(state.pause));
            st.seconds_left = Some(if end > now { end.since(now).as_secs_f64() } else { 0.0 });
        }
    }
    let lock = cloud.lock.holder(&pipeline.ledger_table, &pipeline.app, &env.name).await?;
    st.running = lock.as_ref().is_some_and(|l| l.release_id == r.holder && crate::engine::lock::judge_holder(session, l, Some(r), now).is_live());
    st.holder = lock.filter(|l| l.release_id == r.holder).map(|l| format!("{} on {}", l.holder, l.host));
    st.alarms = alarms::read(cloud, &state.alarms).await?;
    if let Ok(c) = env.cluster(s.cluster.as_str()) {
        let health = cloud.balancer.health(&c.target).await?;
        st.healthy = Some((health.iter().filter(|h| h.state == HealthState::Healthy).count(), c.count));
    }
    Ok(st)
}

/// What `rollout continue` or a `rollback` during a rollout did.
#[derive(Clone, Debug, Serialize)]
pub struct RequestReport {
    /// The rollout.
    pub rollout: String,
    /// What was asked.
    pub request: RolloutRequestKind,
    /// The request's own record (when a live run holds the rollout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Where the rollout stands after it.
    pub step: String,
    /// Its outcome, once it ended.
    pub outcome: Outcome,
    /// For `continue`: the step whose wait it ended (`hold at 10%`: a hold; `10%`: the pause of that step).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// When this process resumed the rollout itself (its holder had died): its switch report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed: Option<SwitchReport>,
}

/// How long `rollout continue`/`rollback` waits for the holder to act on a request.
pub const REQUEST_WAIT: Duration = Duration::from_secs(120);

/// Who holds an unfinished rollout, as read (a read only: nothing is broken here).
enum Holding {
    /// A live run: it is asked, through the ledger.
    Live,
    /// A run provably gone (same host, its process gone, no hook of it running), still holding this lock: a
    /// command that takes over breaks it first ([`take_over`]).
    Gone(crate::model::ledger::LockInfo),
    /// Nobody (the lock is free, its lease ran out, or it is another run's).
    Nobody,
}

/// The unfinished rollout of `env` and who holds it.
async fn holder_of(session: &Session, pipeline: &Pipeline, env: &Environment) -> Result<Option<(Record, Holding)>> {
    let cloud = &session.cloud;
    let records = crate::engine::session::recent_records(cloud, pipeline, &env.name).await?;
    let Some((r, _, _)) = unfinished(&records) else { return Ok(None) };
    let Some(lock) = cloud.lock.holder(&pipeline.ledger_table, &pipeline.app, &env.name).await?.filter(|l| l.release_id == r.holder) else {
        return Ok(Some((r.clone(), Holding::Nobody)));
    };
    let holding = match crate::engine::lock::judge_holder(session, &lock, Some(r), cloud.clock.now()) {
        crate::engine::lock::Holder::Gone(_) => Holding::Gone(lock),
        _ if !lock.is_stale(cloud.clock.now()) => Holding::Live,
        _ => Holding::Nobody,
    };
    Ok(Some((r.clone(), holding)))
}

/// Takes over the rollout `r` from a holder judged gone: breaks its lock, as `release unlock` would, so that this
/// command (the resume, or the rollback that restores the weights from before it) runs at once instead of
/// waiting for a lease that nobody renews to run out.
async fn take_over(session: &Session, pipeline: &Pipeline, env: &Environment, r: &Record, holding: &Holding) -> Result<()> {
    match holding {
        Holding::Gone(lock) => crate::engine::lock::break_gone(session, pipeline, env, lock, &format!("rollout {}", r.release_id)).await,
        Holding::Live | Holding::Nobody => Ok(()),
    }
}

/// Writes a request for the live run holding `rollout`, then waits (bounded) until it acted on it.
async fn request(session: &Session, pipeline: &Pipeline, env: &Environment, rollout: &Record, kind: RolloutRequestKind) -> Result<RequestReport> {
    let cloud = &session.cloud;
    let Action::Switch(s) = &rollout.action else { return Err(Internal::Invariant { what: "a rollout record that is not a switch".into() }.into()) };
    let id = session.new_release_id();
    let now = cloud.clock.now();
    // Where it stood when asked: `continue` has been acted on once the holder left that step (or ended).
    let asked = Asked {
        rollout,
        kind,
        id: id.clone(),
        at: s.rollout.as_ref().map(|st| (st.step, st.holding)),
        ended: s.rollout.as_ref().map(|st| step_name(&st.steps, st.step)),
    };
    let action = Action::RolloutRequest(RolloutRequestDetails { rollout: rollout.release_id.clone(), request: kind, cluster: s.cluster.clone() });
    let mut record = session.record(pipeline, &env.name, id, now, action);
    record.finished = Some(now);
    record.outcome = Outcome::Succeeded;
    record.detail = Some(format!("asked rollout {} to {}", rollout.release_id, if kind == RolloutRequestKind::Continue { "go on" } else { "go back" }));
    crate::engine::lock::leave_request(session, pipeline, &record).await?;
    session.progress(&format!(
        "asked the run holding rollout {} ({} on {}) to {}; waiting for it",
        rollout.release_id,
        rollout.actor,
        rollout.host,
        if kind == RolloutRequestKind::Continue { "go on" } else { "go back" }
    ));
    let deadline = now.add(REQUEST_WAIT);
    // The signals are this wait's: a Ctrl-C ends it with what was left in the ledger, not "nothing was changed".
    let _claim = session.signals.claim();
    loop {
        // A Ctrl-C stops the wait, not the request: it stays in the ledger and the holder acts on it.
        if session.signals.clone().wait(cloud.clock.as_ref(), session.poll.min(Duration::from_secs(2))).await {
            return Err(Failure::Interrupted {
                what: format!(
                    "stopped waiting; the request stays in the ledger and rollout {} acts on it at its next poll; see `release rollout status --env {}`",
                    rollout.release_id, env.name
                ),
            }
            .into());
        }
        let records = crate::engine::session::recent_records(cloud, pipeline, &env.name).await?;
        let Some(r) = records.iter().find(|r| r.release_id == rollout.release_id) else {
            return Err(Internal::Invariant { what: format!("the record of rollout {} vanished", rollout.release_id) }.into());
        };
        let Action::Switch(d) = &r.action else { continue };
        if let Some(answer) = asked.answer(env, r, d) {
            return answer;
        }
        if cloud.clock.now() >= deadline {
            return Err(LockHeld::RequestIgnored {
                release_id: rollout.release_id.to_string(),
                actor: rollout.actor.clone(),
                host: rollout.host.clone(),
                waited: REQUEST_WAIT,
                env: env.name.to_string(),
            }
            .into());
        }
    }
}

/// A request left for the holder of a rollout, and where the rollout stood when it was asked.
struct Asked<'r> {
    rollout: &'r Record,
    kind: RolloutRequestKind,
    /// The request's own record.
    id: ReleaseId,
    /// The step and whether it held, when asked.
    at: Option<(Option<usize>, bool)>,
    /// The step's name, when asked.
    ended: Option<String>,
}

impl Asked<'_> {
    /// Whether the holder acted on the request, as the rollout's record `r` (with its details `d`) says now: the
    /// report (or the refusal of a rollback the rollout ended without seeing), else `None`.
    fn answer(&self, env: &Environment, r: &Record, d: &crate::model::ledger::SwitchDetails) -> Option<Result<RequestReport>> {
        let (rollout, kind) = (self.rollout, self.kind);
        let state = d.rollout.clone().unwrap_or_else(|| RolloutState { steps: vec![], pause: 0.0, alarms: vec![], step: None, since: None, holding: false, reason: None });
        let acted = match kind {
            RolloutRequestKind::Continue => r.outcome.is_final() || self.at.is_none_or(|(step, holding)| state.step != step || (holding && !state.holding)),
            RolloutRequestKind::Rollback => r.outcome.is_final(),
        };
        if !acted {
            return None;
        }
        let report = RequestReport {
            rollout: rollout.release_id.to_string(),
            request: kind,
            request_id: Some(self.id.to_string()),
            step: step_name(&state.steps, state.step),
            outcome: r.outcome,
            ended: (kind == RolloutRequestKind::Continue).then(|| self.ended.clone()).flatten(),
            resumed: None,
        };
        if kind == RolloutRequestKind::Rollback && r.outcome != Outcome::RolledBack {
            return Some(Err(Refused::RolloutEnded { release_id: rollout.release_id.to_string(), outcome: r.outcome.as_str().to_owned(), env: env.name.to_string() }.into()));
        }
        Some(Ok(report))
    }
}

/// `release rollout continue --env ENV`: a live holder is asked to go past its hold (or end its pause); a rollout
/// whose process died is resumed here, past its hold.
pub async fn continue_rollout(session: &Session, pipeline: &Pipeline, env: &Environment, wait: crate::engine::queue::Wait) -> Result<RequestReport> {
    let Some((r, holding)) = holder_of(session, pipeline, env).await? else {
        if !env.is_blue_green() {
            return Err(NotFound::NoRollouts { env: env.name.to_string() }.into());
        }
        let clusters: Vec<String> = env.clusters().iter().map(|c| c.name.to_string()).collect();
        return Err(NotFound::Rollout { env: env.name.to_string(), clusters }.into());
    };
    if matches!(holding, Holding::Live) {
        return request(session, pipeline, env, &r, RolloutRequestKind::Continue).await;
    }
    // Resumed here: its holder is gone.
    take_over(session, pipeline, env, &r, &holding).await?;
    let Action::Switch(s) = &r.action else { return Err(Internal::Invariant { what: "a rollout record that is not a switch".into() }.into()) };
    let cluster = env.cluster(s.cluster.as_str())?;
    let opts = SwitchOptions { wait, ..Default::default() };
    let rep = run_inner(session, pipeline, env, cluster, &opts, None, true).await?;
    let o = rep.rollout.clone();
    Ok(RequestReport {
        rollout: r.release_id.to_string(),
        request: RolloutRequestKind::Continue,
        request_id: None,
        step: o.as_ref().map(|o| o.reached.clone()).unwrap_or_default(),
        outcome: if o.as_ref().is_some_and(|o| o.rolled_back) { Outcome::RolledBack } else { Outcome::Succeeded },
        ended: None,
        resumed: Some(rep),
    })
}

/// `release rollback --env ENV` while a live run holds a rollout: asks it to go back and waits until it did.
/// `None` when no live run holds one: the ordinary rollback then restores the weights from before it, taking over
/// from a holder that is gone (whose lock is broken here, for that rollback to take at once).
pub async fn rollback_request(session: &Session, pipeline: &Pipeline, env: &Environment) -> Result<Option<RequestReport>> {
    match holder_of(session, pipeline, env).await? {
        Some((r, Holding::Live)) => request(session, pipeline, env, &r, RolloutRequestKind::Rollback).await.map(Some),
        Some((r, holding)) => take_over(session, pipeline, env, &r, &holding).await.map(|()| None),
        None => Ok(None),
    }
}
