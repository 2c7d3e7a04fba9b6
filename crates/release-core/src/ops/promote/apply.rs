//! Carry out a promote plan inside the operation runner: settle, clean up what dead runs left, open (or adopt)
//! the record, then rounds of launch -> running -> register -> healthy -> (point of no return) deregister -> drain
//! -> terminate.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::{settle_left, Change, FleetChange, PlanKind, PromotePlan};
use super::{per_zone, spread, PromoteOptions, PromoteOutcome, PromoteReport};
use crate::model::pipeline::launch::user_data;
use crate::model::clock::format_duration;
use crate::model::error::{Aws, Cause, Deploy, Error, ErrorKind, Internal, Result};
use crate::model::ids::{short_sha, InstanceId};
use crate::model::ledger::{Action, Outcome, Progress, PromoteDetails, Record};
use crate::model::pipeline::Cluster;
use crate::ports::{tags, HealthState, LaunchSpec};
use crate::engine::runner::Op;
use crate::steps::fleet::terminate;
use crate::steps::fleet::register;

/// The details a promote record starts with.
pub fn details(plan: &PromotePlan) -> PromoteDetails {
    PromoteDetails {
        cluster: plan.place.cluster.clone(),
        commit: plan.release.commit.clone(),
        ami: plan.release.ami.clone(),
        from: plan.release.from_commit.clone(),
        config_hash: plan.release.config_hash.clone(),
        in_place: plan.place.in_place,
        new_instances: Vec::new(),
        retired_instances: Vec::new(),
        strays_retired: Vec::new(),
        terminated_by_hand: Vec::new(),
        batches_done: 0,
        subject: plan.release.subject.clone(),
        draining: BTreeMap::new(),
        groups: None,
    }
}

/// An empty report for a plan.
pub fn report(plan: &PromotePlan, outcome: PromoteOutcome) -> PromoteReport {
    PromoteReport {
        release_id: plan.fleet().and_then(|f| f.resume.as_ref()).map(ToString::to_string).unwrap_or_default(),
        app: plan.place.app.clone(),
        env: plan.place.env.clone(),
        cluster: plan.place.cluster.clone(),
        commit: plan.release.commit.clone(),
        ami: plan.release.ami.clone(),
        from_commit: plan.release.from_commit.clone(),
        outcome: outcome.to_owned(),
        new_instances: Vec::new(),
        retired_instances: Vec::new(),
        strays_retired: Vec::new(),
        terminated_by_hand: Vec::new(),
        adopted: plan.fleet().map(|f| f.adopted.clone()).unwrap_or_default(),
        cleaned: Vec::new(),
        launches: plan.fleet().map(|f| f.launches.clone()).unwrap_or_default(),
        seconds: BTreeMap::new(),
        polls: 0,
        renewals: 0,
        forced: false,
        hooks: Vec::new(),
    }
}

/// The whole promote under the lock: the plan must have been made under the same lock.
pub async fn apply(op: &mut Op<'_>, plan: &PromotePlan, opts: &PromoteOptions) -> Result<PromoteReport> {
    let mut rep = report(plan, PromoteOutcome::Succeeded);
    if plan.kind() == PlanKind::Deploy {
        // Before anything changes; a rollback's promote (`deploy` alone) goes back and is not held by an alarm.
        let cluster = op.env().cluster(plan.place.cluster.as_str())?;
        crate::observe::preflight::check_in_place(op.cloud(), op.env(), cluster, plan.safety.batch.is_some()).await?;
    }
    settle(op, plan).await?;
    rep.forced = plan.safety.forced && plan.settle_until().is_some();
    prelude(op, plan, &mut rep).await?;
    let fleet = match &plan.change {
        Change::Nothing => {
            rep.outcome = PromoteOutcome::Noop;
            return Ok(rep);
        }
        Change::Cleanup { complete } => {
            rep.outcome = PromoteOutcome::Noop;
            if let Some(id) = complete {
                // The fleet of a run that died after retiring the old one serves: close its record.
                let records = op.recent_records().await?;
                if let Some(r) = records.into_iter().find(|r| &r.release_id == id && r.outcome == Outcome::Started) {
                    op.adopt(r, "completed by a re-run: its new fleet was serving and the old one retired".into()).await?;
                    rep.release_id = id.to_string();
                    rep.outcome = PromoteOutcome::Completed;
                }
            }
            return Ok(rep);
        }
        Change::Deploy(fleet) => fleet,
    };
    match &fleet.resume {
        Some(id) => {
            let records = op.recent_records().await?;
            let r = records
                .into_iter()
                .find(|r| &r.release_id == id)
                .ok_or_else(|| Error::from(Internal::Invariant { what: format!("the unfinished record {id} vanished") }))?;
            op.progress(&format!("resuming unfinished release {id} of {} to {}", short_sha(plan.release.commit.as_str()), plan.place.cluster));
            let detail = format!("resumed by run {} after an interruption", op.run_id());
            op.adopt(r, detail).await?;
        }
        None => {
            let mut record = op.draft(Action::Promote(details(plan)));
            record.forced = rep.forced;
            op.open(record).await?;
        }
    }
    rep.release_id = op.record().map(|r| r.release_id.to_string()).unwrap_or_default();
    op.step(crate::model::phase::Checkpoint::Recorded)?;
    let mut d = op.record().and_then(Record::promote_details).cloned().unwrap_or_else(|| details(plan));
    let result = match crate::ops::promote::hooks::before_promote(op, plan, opts).await {
        Ok(()) => match &plan.asg {
            Some(asg) => super::asg::deploy(op, plan, asg, fleet, &mut d, &mut rep, opts).await,
            None => deploy(op, plan, fleet, &mut d, &mut rep, opts).await,
        },
        e => e,
    };
    // Blue/green runs its before_traffic inside `deploy`, between setting the previous release aside and retiring it.
    let result = match result {
        Ok(()) if plan.place.in_place => crate::ops::promote::hooks::after_deploy(op, plan, opts, &mut d).await,
        e => e,
    };
    if let Ok(r) = op.record_mut() {
        r.set_promote_details(&d);
    }
    rep.new_instances = d.new_instances.clone();
    rep.retired_instances = d.retired_instances.clone();
    rep.strays_retired = d.strays_retired.clone();
    rep.terminated_by_hand = d.terminated_by_hand.clone();
    rep.renewals = op.renewals();
    if let Some(r) = op.record() {
        rep.seconds = r.seconds.clone();
        rep.seconds.insert("total".into(), op.cloud().clock.now().since(r.started).as_secs_f64());
        rep.hooks = r.hooks.clone();
    }
    // A failure after the record opened still names it and the hooks that ran, in the JSON error document.
    result.map_err(|e| e.with_report(serde_json::json!({ "release_id": rep.release_id, "hooks": rep.hooks }))).map(|()| rep)
}

/// Waits out `settle` for a cluster that was live moments ago (resolvers still send it traffic), with a countdown.
pub async fn settle(op: &mut Op<'_>, plan: &PromotePlan) -> Result<()> {
    let now = op.cloud().clock.now();
    let Some(left) = settle_left(plan, now) else { return Ok(()) };
    if plan.safety.forced {
        op.progress(&format!(
            "{} was live until {}s ago; --force: not waiting the {} left of settle (resolvers may still send it traffic)",
            plan.place.cluster,
            plan.settle_until().map(|t| t.since(now).as_secs()).unwrap_or(0),
            format_duration(std::time::Duration::from_secs(left.as_secs()))
        ));
        return Ok(());
    }
    let until = plan.settle_until().expect("left is some");
    loop {
        let now = op.cloud().clock.now();
        if now >= until {
            return Ok(());
        }
        let left = until.since(now);
        op.progress(&format!(
            "{} stopped taking traffic moments ago and resolvers may still send it some: waiting {} before replacing it (--force skips this)",
            plan.place.cluster,
            format_duration(std::time::Duration::from_secs(left.as_secs().max(1)))
        ));
        op.pause(left.min(std::time::Duration::from_secs(15))).await?;
    }
}

/// Closes the records of dead runs and removes what failed ones left (before anything new is launched).
pub async fn prelude(op: &mut Op<'_>, plan: &PromotePlan, rep: &mut PromoteReport) -> Result<()> {
    if !plan.leftovers.abandon.is_empty() {
        let records = op.recent_records().await?;
        for r in records.iter().filter(|r| plan.leftovers.abandon.contains(&r.release_id) && r.outcome == Outcome::Started) {
            let detail = format!("unfinished; cleaned up by run {}", op.run_id());
            crate::steps::records::close(op, r, Outcome::Abandoned, Some(true), detail).await?;
        }
    }
    if !plan.leftovers.cleanup.is_empty() {
        op.progress(&format!("cleaning up {} instance(s) left by unfinished or failed releases", plan.leftovers.cleanup.len()));
        op.guard().await?;
        let cluster = op.env().cluster(plan.place.cluster.as_str())?;
        let members: BTreeSet<InstanceId> = op.cloud().balancer.members(&cluster.target).await?.into_iter().collect();
        let reg: Vec<InstanceId> = plan.leftovers.cleanup.iter().filter(|i| members.contains(*i)).cloned().collect();
        if !reg.is_empty() {
            crate::steps::fleet::deregister(op, &cluster.target, &reg).await?;
        }
        terminate(op, &plan.leftovers.cleanup).await?;
        rep.cleaned = plan.leftovers.cleanup.clone();
    }
    Ok(())
}

/// The launch, swap and retire rounds of a promote (`fleet`: its plan's change); `d` is kept up to date (and saved into
/// the record) as it goes.
/// On error it has already removed every instance it launched that was not yet serving in place of an old one.
pub async fn deploy(op: &mut Op<'_>, plan: &PromotePlan, fleet: &FleetChange, d: &mut PromoteDetails, rep: &mut PromoteReport, opts: &PromoteOptions) -> Result<()> {
    let cluster = op.env().cluster(plan.place.cluster.as_str())?.clone();
    let mut run = Rounds {
        cluster,
        // Read under this lock by the plan; kept up to date with what this run does.
        members: plan.place.members.iter().cloned().collect(),
        polls: 0,
        states: BTreeMap::new(),
        zones: fleet.zones.clone(),
    };
    let old_registered = run.members.clone();
    let count = run.cluster.count;
    let batch = plan.safety.batch.unwrap_or(count).clamp(1, count);
    let mut new_ids: Vec<InstanceId> = fleet.adopted.clone();
    let mut remaining_old: Vec<InstanceId> = fleet.retire.clone();
    // Strays and the cluster's own instances terminated by hand leave the load balancer together, at the end.
    let mut strays: Vec<InstanceId> = fleet.strays.iter().map(|s| s.id.clone()).chain(fleet.terminated.iter().cloned()).collect();
    // Blue/green retires the idle cluster's previous release only after the rounds (see `swap_idle`); a round runs
    // at least once there, so that a resumed fleet is checked running, registered and healthy.
    let mut first = true;
    let finished = |new: usize, old: &[InstanceId], strays: &[InstanceId], first: bool| {
        new as u32 >= count && if plan.place.in_place { old.is_empty() && strays.is_empty() } else { !first }
    };
    loop {
        let have = new_ids.len() as u32;
        if finished(new_ids.len(), &remaining_old, &strays, first) {
            break;
        }
        first = false;
        let round_new = count.saturating_sub(have).min(batch);
        let before = new_ids.len();
        let result = round(op, plan, &mut run, d, &mut new_ids, round_new, &mut remaining_old, &mut strays, &old_registered, batch, opts).await;
        d.new_instances = new_ids.clone();
        rep.polls = run.polls;
        if let Err(e) = result {
            if e.kind() == ErrorKind::Crash {
                return Err(e);
            }
            if op.past_no_return() {
                // New capacity is healthy and serving, old capacity partly gone: keep the new; a re-run retires
                // what is left of the old.
                return Err(e.context(format!(
                    "retiring the old instances of {} (the new ones are healthy and serving; run the same command again to finish)",
                    plan.place.cluster
                )));
            }
            // Roll back this round's instances (all new ones when not batching, or blue/green, where no round
            // retires anything): they never replaced old capacity.
            let this_round: Vec<InstanceId> = new_ids[before..].to_vec();
            let undo = if plan.safety.batch.is_some() && plan.place.in_place { this_round } else { new_ids.clone() };
            let e = compensate(op, plan, &mut run, &undo, e).await;
            new_ids.retain(|i| !undo.contains(i));
            d.new_instances = new_ids.clone();
            return Err(e);
        }
        d.batches_done += 1;
        if finished(new_ids.len(), &remaining_old, &strays, first) {
            break;
        }
        op.record_mut()?.set_promote_details(d);
        op.save().await?;
        if plan.safety.batch.is_some() {
            crate::steps::watch::between_batches(op, &run.cluster, d.batches_done, count.div_ceil(batch)).await?;
        }
    }
    op.record_mut()?.set_promote_details(d);
    rep.polls = run.polls;
    if !plan.place.in_place {
        swap_idle(op, plan, &mut run, d, remaining_old, strays, &old_registered, opts).await?;
        rep.polls = run.polls;
    }
    Ok(())
}

/// Blue/green, once the new fleet is healthy in the idle cluster: the idle cluster's previous release is what a
/// switch back goes to, so it is only set aside (deregistered, still running) while `before_traffic` checks the
/// new fleet alone behind the load balancer, and retired once the hook passed, as old capacity in place is never
/// removed before the new is proven. A failure before that removes the new fleet and registers the previous
/// release again.
#[allow(clippy::too_many_arguments)]
async fn swap_idle(
    op: &mut Op<'_>,
    plan: &PromotePlan,
    run: &mut Rounds,
    d: &mut PromoteDetails,
    previous: Vec<InstanceId>,
    strays: Vec<InstanceId>,
    old_registered: &BTreeSet<InstanceId>,
    opts: &PromoteOptions,
) -> Result<()> {
    // Strays stay until the hook passed: one that was terminated by hand could not be registered again.
    let out: Vec<InstanceId> = previous.iter().filter(|i| old_registered.contains(*i) || run.members.contains(*i)).cloned().collect();
    if let Err(e) = aside_then_check(op, plan, run, d, &out, opts).await {
        if e.kind() == ErrorKind::Crash {
            return Err(e);
        }
        // A failing or interrupted hook has removed the new fleet already (and says whether it could).
        let e = if e.rolled_back().is_some() {
            e
        } else {
            let undo = d.new_instances.clone();
            let e = compensate(op, plan, run, &undo, e).await;
            if e.rolled_back() == Some(true) {
                d.new_instances.clear();
            }
            e
        };
        return Err(register_again(op, plan, run, d, &previous, e).await);
    }
    let mut going = previous.clone();
    going.extend(strays.iter().cloned());
    if going.is_empty() {
        return Ok(());
    }
    let registered: Vec<InstanceId> = strays.iter().filter(|i| old_registered.contains(*i) || run.members.contains(*i)).cloned().collect();
    guard_aside(op, run, d, &going, &registered, true).await?;
    op.point_of_no_return("the new fleet passed its checks and the idle cluster's previous release is leaving");
    retire(op, plan, run, d, &going, &registered).await?;
    d.retired_instances.extend(previous);
    note_retired_strays(plan, d, strays);
    op.lap(crate::model::phase::Lap::Retire);
    Ok(())
}

/// Sets the idle cluster's previous instances `out` aside (under a lock check), then runs `before_traffic` on the
/// new fleet alone.
async fn aside_then_check(op: &mut Op<'_>, plan: &PromotePlan, run: &mut Rounds, d: &mut PromoteDetails, out: &[InstanceId], opts: &PromoteOptions) -> Result<()> {
    if !out.is_empty() {
        guard_aside(op, run, d, out, out, false).await?;
        set_aside(op, plan, run, d, out).await?;
    }
    crate::ops::promote::hooks::after_deploy(op, plan, opts, d).await
}

/// Strays a round or `swap_idle` retired, on the record: the cluster's own instances terminated by hand apart from
/// the strays proper.
fn note_retired_strays(plan: &PromotePlan, d: &mut PromoteDetails, ids: Vec<InstanceId>) {
    let terminated = plan.fleet().map_or(&[][..], |f| &f.terminated[..]);
    let (gone, strays): (Vec<InstanceId>, Vec<InstanceId>) = ids.into_iter().partition(|i| terminated.contains(i));
    d.strays_retired.extend(strays);
    d.terminated_by_hand.extend(gone);
}

/// After a blue/green promote failed before its point of no return: registers the idle cluster's previous
/// instances that were set aside (by this run or the one it resumed) again, so that a switch back still finds them.
async fn register_again(op: &mut Op<'_>, plan: &PromotePlan, run: &mut Rounds, d: &mut PromoteDetails, previous: &[InstanceId], e: Error) -> Error {
    let back: Vec<InstanceId> = previous.iter().filter(|i| d.draining.contains_key(*i)).cloned().collect();
    if back.is_empty() || op.lock_lost() {
        return e;
    }
    let n = back.len();
    match crate::steps::fleet::register(op, &plan.place.target, &back, run.cluster.deploy.port, run.cluster.deploy.health_timeout).await {
        Ok(()) => {
            for i in &back {
                d.draining.remove(i);
                run.members.insert(i.clone());
                run.states.insert(i.to_string(), "registered".into());
            }
            op.progress(&format!("registered the {n} previous instance(s) of {} again", plan.place.cluster));
            let (why, kind) = (e.message().to_owned(), e.kind());
            e.retold(Deploy::RegisteredAgain { why, kind, count: n })
        }
        Err(r) => {
            let (why, kind) = (e.message().to_owned(), e.kind());
            e.retold(Deploy::RegisterAgainFailed { why, kind, count: n, error: r.to_string(), cluster: plan.place.cluster.to_string() }).with_rolled_back(false)
        }
    }
}

/// What stopped a promote, as its cleanup tells it: the error's kind and why (`interrupted`, or its message).
pub(super) fn failure_of(e: &Error) -> (ErrorKind, String) {
    let kind = e.kind();
    let why = match kind {
        ErrorKind::Interrupted => "interrupted".to_owned(),
        _ => e.message().to_owned(),
    };
    (kind, why)
}

/// Claims the record before removing what a failed run made: `Ok(e)` when this run may clean up; otherwise `e`
/// retold (a run that adopted the record keeps what it adopted, or the claim itself failed), nothing rolled back.
pub(super) async fn claim_cleanup(op: &mut Op<'_>, e: Error, why: &str, kind: ErrorKind) -> std::result::Result<Error, Error> {
    match op.claim_for_cleanup().await {
        Ok(true) => Ok(e),
        Ok(false) => {
            let release_id = op.record().map(|r| r.release_id.to_string()).unwrap_or_default();
            Err(e.retold(Deploy::TakenOver { why: why.to_owned(), kind, release_id }).with_rolled_back(false))
        }
        Err(claim) => Err(e.retold(Deploy::ClaimFailed { why: why.to_owned(), kind, error: claim.to_string() }).with_rolled_back(false)),
    }
}

/// Removes `undo` (never serving in place of old capacity) after a failure, and retells the error with what
/// happened (keeping its kind). After a lost lock it first claims the record, so a run that adopted it keeps what
/// it adopted.
async fn compensate(op: &mut Op<'_>, plan: &PromotePlan, run: &mut Rounds, undo: &[InstanceId], e: Error) -> Error {
    let (kind, why) = failure_of(&e);
    let (commit, cluster) = (short_sha(plan.release.commit.as_str()).to_owned(), plan.place.cluster.to_string());
    if undo.is_empty() {
        return e.retold(Deploy::NothingLaunched { commit, cluster, why, kind }).with_rolled_back(true);
    }
    let e = match claim_cleanup(op, e, &why, kind).await {
        Ok(e) => e,
        Err(told) => return told,
    };
    op.progress(&format!("rolling back: removing {} new instance(s)", undo.len()));
    // Terminating is what removes them: a deregistration that fails (the load balancer deleted meanwhile, say) is
    // only noted, since the load balancer drops terminated instances by itself.
    let reg: Vec<InstanceId> = undo.iter().filter(|i| run.members.contains(*i)).cloned().collect();
    if !reg.is_empty() {
        if let Err(d) = crate::steps::fleet::deregister(op, &plan.place.target, &reg).await {
            op.progress(&format!("rolling back: deregistering from {} failed ({d}); terminating the new instances anyway", plan.place.target));
        }
    }
    let cleanup = terminate(op, undo).await;
    match cleanup {
        Ok(()) => {
            for i in undo {
                run.members.remove(i);
            }
            e.retold(Deploy::Removed { commit, cluster, why, kind, count: undo.len() }).with_rolled_back(true)
        }
        Err(c) => e.retold(Deploy::RemoveFailed { commit, cluster, why, kind, count: undo.len(), error: c.to_string() }).with_rolled_back(false),
    }
}

struct Rounds {
    cluster: Cluster,
    /// Who is registered with the cluster's load balancer: read once, then kept up to date with what we do.
    members: BTreeSet<InstanceId>,
    polls: u32,
    /// Instance -> state, for the progress written into the record.
    states: BTreeMap<String, String>,
    /// Instance -> zone of the new fleet (adopted or launched), so that each launch evens the zones out.
    zones: BTreeMap<InstanceId, String>,
}

#[allow(clippy::too_many_arguments)]
async fn round(
    op: &mut Op<'_>,
    plan: &PromotePlan,
    run: &mut Rounds,
    d: &mut PromoteDetails,
    new_ids: &mut Vec<InstanceId>,
    n: u32,
    remaining_old: &mut Vec<InstanceId>,
    strays: &mut Vec<InstanceId>,
    old_registered: &BTreeSet<InstanceId>,
    batch: u32,
    opts: &PromoteOptions,
) -> Result<()> {
    if n > 0 {
        op.check()?;
        let (launched, failed) = launch(op, plan, run, new_ids, n, opts).await;
        // What was launched is the rollback's to remove, whether or not every call succeeded.
        new_ids.extend(launched.iter().cloned());
        for id in &launched {
            run.states.insert(id.to_string(), "pending".into());
        }
        d.new_instances = new_ids.clone();
        let launched_progress = progress(op, crate::model::phase::Phase::Launched, format!("launched {}, waiting for running", launched.len()), run);
        let r = op.record_mut()?;
        r.set_promote_details(d);
        r.progress = Some(launched_progress);
        if let Some(e) = failed {
            let _ = op.save().await;
            return Err(e);
        }
        // Written before the first wait for running, or with the guard before the old fleet leaves: the instances
        // carry the release id in their tags, which is how a re-run finds them.
        op.save_later();
        op.lap(crate::model::phase::Lap::Launch);
        op.step(crate::model::phase::Checkpoint::Launched)?;
    }
    // Adopted instances may not be running or registered yet either: check them all.
    let pending: Vec<InstanceId> = new_ids.clone();
    wait_running(op, run, &pending).await?;
    op.lap(crate::model::phase::Lap::WaitRunning);
    op.step(crate::model::phase::Checkpoint::Running)?;
    let to_register: Vec<InstanceId> = pending.iter().filter(|i| !run.members.contains(*i)).cloned().collect();
    if !to_register.is_empty() {
        crate::ops::promote::hooks::before_registering(op, plan, opts, &pending).await?;
        op.check()?;
        register(op, &plan.place.target, &to_register, run.cluster.deploy.port, run.cluster.deploy.health_timeout).await?;
        run.members.extend(to_register.iter().cloned());
        for id in &to_register {
            run.states.insert(id.to_string(), "registered".into());
        }
        op.progress(&format!("registered {} instance(s) with {}", to_register.len(), plan.place.target));
    }
    op.lap(crate::model::phase::Lap::Register);
    op.step(crate::model::phase::Checkpoint::Registered)?;
    wait_healthy(op, run, &pending).await?;
    op.lap(crate::model::phase::Lap::WaitHealthy);
    op.step(crate::model::phase::Checkpoint::Healthy)?;
    if !plan.place.in_place {
        return Ok(());
    }
    // From here on old capacity goes away; new capacity is healthy, so the promote finishes whatever happens.
    let full = new_ids.len() as u32 >= run.cluster.count;
    let take = if full { remaining_old.len() } else { (batch as usize).min(remaining_old.len()) };
    let mut going: Vec<InstanceId> = remaining_old.drain(..take).collect();
    let stray_ids: Vec<InstanceId> = if full { std::mem::take(strays) } else { Vec::new() };
    going.extend(stray_ids.iter().cloned());
    if going.is_empty() {
        return Ok(());
    }
    let registered: Vec<InstanceId> = going.iter().filter(|i| old_registered.contains(*i) || run.members.contains(*i)).cloned().collect();
    guard_aside(op, run, d, &going, &registered, true).await?;
    op.point_of_no_return("the new instances are healthy and the old fleet is already leaving");
    retire(op, plan, run, d, &going, &registered).await?;
    d.retired_instances.extend(going.iter().filter(|i| !stray_ids.contains(i)).cloned());
    note_retired_strays(plan, d, stray_ids);
    op.lap(crate::model::phase::Lap::Retire);
    Ok(())
}

/// Launches `count` instances, one call per subnet, spread over the plan's subnets. A zone out of capacity for the
/// instance type (or not offering it) is left out and its share launched in the other zones. Returns what was
/// launched, and the error that stopped it. `fleet`: the release's instances so far (adopted, or launched by earlier
/// rounds), whose zones the launch evens out and whose number tells this launch's tokens from theirs.
async fn launch(op: &mut Op<'_>, plan: &PromotePlan, run: &mut Rounds, fleet: &[InstanceId], count: u32, opts: &PromoteOptions) -> (Vec<InstanceId>, Option<Error>) {
    let pipeline = op.pipeline();
    let env = op.env();
    let cluster = &run.cluster;
    let Some(record) = op.record() else { return (Vec::new(), Some(Internal::Invariant { what: "launch before the record was opened".into() }.into())) };
    let release = record.release_id.clone();
    let ud = user_data(&pipeline.app, &env.name, &env.vars, cluster, &plan.release.commit, &release, &opts.region);
    let tags = vec![
        (tags::APP.to_owned(), pipeline.app.to_string()),
        (tags::COMMIT.to_owned(), plan.release.commit.to_string()),
        (tags::ENV.to_owned(), env.name.to_string()),
        (tags::CLUSTER.to_owned(), cluster.name.to_string()),
        (tags::RELEASE_ID.to_owned(), release.to_string()),
        (tags::CONFIG.to_owned(), plan.release.config_hash.clone()),
        ("Name".to_owned(), format!("{}-{}-{}", pipeline.app, cluster.name, short_sha(plan.release.commit.as_str()))),
    ];
    let mut groups = vec![plan.place.instance_group.clone()];
    groups.extend(cluster.deploy.security_groups.iter().cloned());
    let root_volume = match (&cluster.deploy.root_volume, &plan.release.root_device) {
        (Some(v), Some(dev)) => Some((dev.clone(), v.clone())),
        _ => None,
    };
    let mut subnets = plan.place.network.subnets.clone();
    let before = fleet.len();
    let mut have = per_zone(fleet, &run.zones);
    let mut launches = spread(count, &subnets, &have);
    op.progress(&format!("launching {count} instance(s) of {} in {} subnet(s)", plan.release.ami, launches.len()));
    let mut ids = Vec::new();
    let mut short: Vec<String> = Vec::new();
    for attempt in 0.. {
        let mut shortfall = 0;
        for p in &launches {
            let mut spec = LaunchSpec {
                ami: plan.release.ami.clone(),
                instance_type: cluster.deploy.instance_type.clone(),
                subnet: p.subnet.clone(),
                security_groups: groups.clone(),
                count: p.count,
                user_data: ud.clone(),
                tags: tags.clone(),
                client_token: String::new(),
                instance_profile: cluster.deploy.instance_profile.clone(),
                key_name: cluster.deploy.key_name.clone(),
                metadata_tokens: cluster.deploy.metadata_tokens,
                root_volume: root_volume.clone(),
            };
            // The same token always carries the same arguments: a resumed run launching fewer, or again after
            // adopting a batch, makes a new call, never EC2's replay of an earlier one (or its mismatch).
            spec.client_token = spec.token(release.as_str(), before + ids.len());
            match crate::steps::fleet::launch(op, &spec).await {
                Ok(mut launched) => {
                    *have.entry(p.availability_zone.clone()).or_default() += launched.len() as u32;
                    run.zones.extend(launched.iter().map(|i| (i.clone(), p.availability_zone.clone())));
                    ids.append(&mut launched);
                }
                Err(e) if e.is(Cause::Capacity) || e.is(Cause::Unsupported) => {
                    op.progress(&format!("{} ({}) cannot take {} x {} now: {}; launching them in other zones", p.subnet, p.availability_zone, p.count, cluster.deploy.instance_type, e.code().unwrap_or("no capacity")));
                    short.push(format!("{}: {}", p.availability_zone, e.code().unwrap_or("no capacity")));
                    subnets.retain(|s| s.availability_zone != p.availability_zone);
                    shortfall += p.count;
                }
                Err(e) => return (ids, Some(e)),
            }
        }
        if shortfall == 0 {
            break;
        }
        if subnets.is_empty() || attempt >= 8 {
            let e = Error::from(Aws::NoCapacity { shortfall, instance_type: cluster.deploy.instance_type.to_string(), zones: short })
                .with_cause(Cause::Capacity);
            return (ids, Some(e));
        }
        launches = spread(shortfall, &subnets, &have);
    }
    (ids, None)
}

/// Polls until every instance in `ids` is running. Each poll asks, by id, which of them are not running (yet):
/// an empty answer means done, and neither the question nor the answer grows with the rest of the fleet.
async fn wait_running(op: &mut Op<'_>, run: &mut Rounds, ids: &[InstanceId]) -> Result<()> {
    const NOT_RUNNING: &[&str] = &["pending", "stopping", "stopped", "shutting-down", "terminated"];
    let timeout = run.cluster.deploy.health_timeout;
    let started = op.cloud().clock.now();
    let deadline = started.add(timeout);
    let mut last = usize::MAX;
    loop {
        op.check()?;
        run.polls += 1;
        let waiting = match op.cloud().fleet.instances_in(ids, NOT_RUNNING).await {
            Ok(w) => w,
            // Right after RunInstances EC2 may not know the ids yet: they are pending.
            Err(e) if e.is(Cause::NotYetVisible) => ids.iter().map(|id| crate::ports::Instance { id: id.clone(), ami: String::new(), state: crate::ports::InstanceState::Pending, tags: Default::default(), zone: String::new(), subnet_id: String::new(), vpc_id: String::new(), groups: Default::default() }).collect(),
            Err(e) => return Err(e),
        };
        if let Some(bad) = waiting.iter().find(|i| i.state != crate::ports::InstanceState::Pending) {
            return Err(Deploy::InstanceNotRunning { id: bad.id.to_string(), state: bad.state.to_string() }.into());
        }
        let waiting_ids: BTreeSet<&InstanceId> = waiting.iter().map(|i| &i.id).collect();
        for id in ids {
            let s = run.states.entry(id.to_string()).or_insert_with(|| "pending".into());
            if !waiting_ids.contains(id) && s == "pending" {
                *s = "running".into();
            }
        }
        let running = ids.len() - waiting.len();
        // At most one write per poll, and none when nothing changed (`Op::report` compares).
        let mut p = progress(op, crate::model::phase::Phase::WaitingRunning, format!("running {running}/{}", ids.len()), run);
        p.phase_started = Some(started);
        op.report(p).await?;
        if waiting.is_empty() {
            return Ok(());
        }
        if running != last {
            op.progress(&format!("running {running}/{}", ids.len()));
            last = running;
        }
        if op.cloud().clock.now() >= deadline {
            return Err(Deploy::NotRunning { running, total: ids.len(), after: timeout }.into());
        }
        op.pause(op.session().poll).await?;
    }
}

/// Polls until every instance in `ids` is healthy in the load balancer, up to `health_timeout`.
async fn wait_healthy(op: &mut Op<'_>, run: &mut Rounds, ids: &[InstanceId]) -> Result<()> {
    let timeout = run.cluster.deploy.health_timeout;
    let started = op.cloud().clock.now();
    let deadline = started.add(timeout);
    let want: BTreeSet<&InstanceId> = ids.iter().collect();
    let mut last = usize::MAX;
    let target = run.cluster.target.clone();
    loop {
        op.check()?;
        run.polls += 1;
        let health = op.cloud().balancer.health(&target).await?;
        let healthy: Vec<&InstanceId> = health.iter().filter(|h| want.contains(&h.id) && h.state == HealthState::Healthy).map(|h| &h.id).collect();
        for h in health.iter().filter(|h| want.contains(&h.id)) {
            // A classic ELB says OutOfService both before the first passing checks and after failing ones: a new
            // instance that was never healthy is still only registered.
            let was_healthy = run.states.get(h.id.as_str()).is_some_and(|s| s == "healthy" || s == "unhealthy");
            let s = match h.state {
                HealthState::Healthy => "healthy",
                HealthState::Unhealthy if was_healthy => "unhealthy",
                // Taking no traffic, and why (a zone the load balancer is not enabled in: `Target.NotInUse`).
                HealthState::Unused => "unused",
                _ => "registered",
            };
            run.states.insert(h.id.to_string(), s.into());
        }
        let unused: Vec<String> = health.iter().filter(|h| want.contains(&h.id) && h.state == HealthState::Unused).map(|h| format!("{} unused ({})", h.id, h.reason.as_deref().unwrap_or("no reason given"))).collect();
        let waiting = if unused.is_empty() { format!("healthy {}/{}", healthy.len(), want.len()) } else { format!("healthy {}/{}; {}", healthy.len(), want.len(), unused.join(", ")) };
        let mut p = progress(op, crate::model::phase::Phase::WaitingHealthy, waiting, run);
        p.phase_started = Some(started);
        op.report(p).await?;
        if healthy.len() == want.len() {
            op.progress(&format!("healthy {}/{}", healthy.len(), want.len()));
            return Ok(());
        }
        if healthy.len() != last {
            op.progress(&format!("healthy {}/{}", healthy.len(), want.len()));
            last = healthy.len();
        }
        if op.cloud().clock.now() >= deadline {
            let sick: Vec<String> = health
                .iter()
                .filter(|h| want.contains(&h.id) && h.state != HealthState::Healthy)
                .take(5)
                .map(|h| format!("{} {:?}{}", h.id, h.state, h.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()))
                .collect();
            let missing = want.len() - health.iter().filter(|h| want.contains(&h.id)).count();
            return Err(Deploy::Unhealthy { healthy: healthy.len(), total: want.len(), target: target.to_string(), after: timeout, sick, unregistered: missing }.into());
        }
        op.pause(op.session().poll).await?;
    }
}

/// Target groups report deregistered targets `draining` for their deregistration delay: after waiting `drain`,
/// wait (a bounded while) until none of `ids` is still draining, so that in-flight requests finish.
async fn wait_drained(op: &mut Op<'_>, target: &crate::model::pipeline::LbTarget, ids: &[InstanceId], drain: std::time::Duration) -> Result<()> {
    let deadline = op.cloud().clock.now().add(drain + std::time::Duration::from_secs(60));
    loop {
        let health = op.cloud().balancer.health(target).await?;
        let draining = health.iter().filter(|h| ids.contains(&h.id) && h.state == HealthState::Draining).count();
        if draining == 0 {
            return Ok(());
        }
        if op.cloud().clock.now() >= deadline {
            op.progress(&format!("{draining} instance(s) still draining after {} + 60s; terminating them anyway", format_duration(drain)));
            return Ok(());
        }
        op.pause(op.session().poll).await?;
    }
}

/// Notes the deregistration instant of `ids` in the record, unwritten: the guard before [`set_aside`] writes it with
/// its lock renewal (one transaction), so that it is durable before the deregistration without a write of its own.
fn note_aside(op: &mut Op<'_>, d: &mut PromoteDetails, ids: &[InstanceId]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let now = op.cloud().clock.now();
    for id in ids {
        d.draining.insert(id.clone(), now);
    }
    op.record_mut()?.set_promote_details(d);
    op.save_later();
    Ok(())
}

/// The guard before retiring `ids` (or, `drains` false, setting them aside): notes the deregistration instants of
/// `registered` ([`note_aside`]) and, before a drain, the `draining` progress [`retire`] will show, which the guard
/// writes with its lock renewal. A guard that fails deregisters nothing: the notes are taken back.
async fn guard_aside(op: &mut Op<'_>, run: &Rounds, d: &mut PromoteDetails, ids: &[InstanceId], registered: &[InstanceId], drains: bool) -> Result<()> {
    let before = d.draining.clone();
    note_aside(op, d, registered)?;
    if let Some(p) = drain_progress(op, run, d, ids, registered).filter(|_| drains) {
        op.report(p).await?;
    }
    if let Err(e) = op.guard().await {
        d.draining = before;
        op.record_mut()?.set_promote_details(d);
        return Err(e);
    }
    Ok(())
}

/// The `draining` progress of retiring `ids` once `registered` are deregistered, when a drain is left to wait out.
fn drain_progress(op: &Op<'_>, run: &Rounds, d: &PromoteDetails, ids: &[InstanceId], registered: &[InstanceId]) -> Option<Progress> {
    let drain = run.cluster.deploy.drain;
    let out = ids.iter().filter(|i| !run.members.contains(*i) || registered.contains(*i)).count();
    let since = ids.iter().filter(|i| !run.members.contains(*i) || registered.contains(*i)).filter_map(|i| d.draining.get(i)).max().copied()?;
    if drain.is_zero() || since.add(drain).since(op.cloud().clock.now()).is_zero() {
        return None;
    }
    let mut instances = run.states.clone();
    for id in registered {
        instances.insert(id.to_string(), "draining".into());
    }
    Some(Progress {
        phase: crate::model::phase::Phase::Draining,
        waiting_for: Some(format!("draining {out} for {}", format_duration(drain))),
        phase_started: Some(since),
        instances,
        updated: None,
    })
}

/// Takes `ids` out of the load balancer, their deregistration instant durable in the record first (noted by
/// [`note_aside`] and written by the guard before this, or now): a run that resumes an interrupted drain measures
/// what is left of `drain` from it.
async fn set_aside(op: &mut Op<'_>, plan: &PromotePlan, run: &mut Rounds, d: &mut PromoteDetails, ids: &[InstanceId]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let unnoted: Vec<InstanceId> = ids.iter().filter(|i| !d.draining.contains_key(*i)).cloned().collect();
    note_aside(op, d, &unnoted)?;
    op.flush().await?;
    crate::steps::fleet::deregister(op, &plan.place.target, ids).await?;
    for id in ids {
        run.members.remove(id);
        run.states.insert(id.to_string(), "draining".into());
    }
    op.step(crate::model::phase::Checkpoint::DeregisteredOld)
}

/// Deregisters, drains and terminates `ids` (the ones in `registered` are deregistered first). The drain ends
/// `drain` after the latest deregistration the record holds for them, which a resumed run measures from the
/// interrupted one's, and for target groups not before the load balancer stops reporting them `draining`.
async fn retire(op: &mut Op<'_>, plan: &PromotePlan, run: &mut Rounds, d: &mut PromoteDetails, ids: &[InstanceId], registered: &[InstanceId]) -> Result<()> {
    set_aside(op, plan, run, d, registered).await?;
    let drain = run.cluster.deploy.drain;
    // Out of the load balancer: deregistered now, or by the run this one resumed (or by hand).
    let out: Vec<InstanceId> = ids.iter().filter(|i| !run.members.contains(*i)).cloned().collect();
    if !out.is_empty() {
        if !drain.is_zero() {
            if let Some(since) = out.iter().filter_map(|i| d.draining.get(i)).max().copied() {
                let now = op.cloud().clock.now();
                let left = since.add(drain).since(now);
                if !left.is_zero() {
                    let what = if registered.is_empty() {
                        format!("draining {} instance(s): {} left of {}", out.len(), format_duration(left), format_duration(drain))
                    } else {
                        format!("draining {} instance(s) for {}", out.len(), format_duration(drain))
                    };
                    op.progress(&what);
                    // The same progress the guard before this wrote: no write of its own.
                    if let Some(progress) = drain_progress(op, run, d, ids, registered) {
                        op.report(progress).await?;
                    }
                    op.pause(left).await?;
                }
            }
            if run.cluster.target_is_alb() {
                wait_drained(op, &plan.place.target, &out, drain).await?;
            }
        }
        op.step(crate::model::phase::Checkpoint::Drained)?;
    }
    op.guard().await?;
    terminate(op, ids).await?;
    for id in ids {
        d.draining.remove(id);
        run.states.insert(id.to_string(), "terminated".into());
    }
    op.record_mut()?.set_promote_details(d);
    let p = progress(op, crate::model::phase::Phase::TerminatedOld, format!("terminated {} old", ids.len()), run);
    op.report(p).await?;
    op.progress(&format!("terminated {} old instance(s)", ids.len()));
    op.step(crate::model::phase::Checkpoint::TerminatedOld)
}

/// The progress written into the record: the phase, what it waits for, every instance's state.
fn progress(op: &Op<'_>, phase: crate::model::phase::Phase, waiting_for: String, run: &Rounds) -> Progress {
    Progress { phase, waiting_for: Some(waiting_for), phase_started: Some(op.cloud().clock.now()), instances: run.states.clone(), updated: None }
}
