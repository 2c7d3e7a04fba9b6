//! Where a promote runs its hooks: `before_promote` before anything is launched, `before_traffic` (in place: before
//! the new instances join the load balancer; blue/green: once the idle cluster holds only the new fleet) and, in
//! place, `after_traffic`. What a failure does is decided here.

use crate::engine::runner::Op;
use crate::model::error::{Deploy, ErrorKind, Result};
use crate::model::hook::{failed, HookContext, HookName};
use crate::model::pipeline::hooks::live_name;
use crate::steps::hooks::{passed_before, run, warn};
use crate::model::ids::{short_sha, InstanceId};
use crate::model::ledger::PromoteDetails;
use crate::ops::promote::{PromoteOptions, PromotePlan};

// Where the engine calls the hooks. Each is one call at a clear point of promote/apply.rs or switch.rs.

/// The variables of a promote's hooks; `ids` is the new fleet (empty before launching).
async fn context(op: &Op<'_>, plan: &PromotePlan, ids: &[InstanceId]) -> HookContext {
    let lb = crate::observe::balancers::lb_dns(op.cloud(), &plan.place.target).await;
    // The commit live before this release: in place the cluster's; blue/green the live cluster's, not the idle one's.
    let previous = if plan.place.in_place { plan.release.from_commit.clone() } else { live_commit(op).await };
    HookContext {
        app: plan.place.app.to_string(),
        env: plan.place.env.to_string(),
        cluster: plan.place.cluster.to_string(),
        commit: plan.release.commit.to_string(),
        previous_commit: previous.map(|c| c.to_string()).unwrap_or_default(),
        ami: plan.release.ami.to_string(),
        release_id: op.record().map(|r| r.release_id.to_string()).unwrap_or_default(),
        live_name: live_name(op.env(), &lb),
        lb_dns: lb,
        instance_ids: ids.iter().map(ToString::to_string).collect(),
    }
}

async fn live_commit(op: &Op<'_>) -> Option<crate::model::ids::CommitSha> {
    let live = crate::observe::world::live_name(op.cloud(), op.env()).await.ok()??;
    let instances = op.cloud().fleet.app_instances(&op.pipeline().app).await.ok()?;
    let instances = crate::observe::groups::serving_instances(op.cloud(), op.pipeline(), instances).await.ok()?;
    crate::observe::world::previous(op.env(), &live.weights, &instances).map(|l| l.commit)
}

/// `before_promote`, once, before anything is launched: a failure is a failed deploy that changed nothing.
pub async fn before_promote(op: &mut Op<'_>, plan: &PromotePlan, opts: &PromoteOptions) -> Result<()> {
    if opts.skip_hooks || op.env().hooks.command(HookName::BeforePromote).is_none() || passed_before(op, HookName::BeforePromote) {
        return Ok(());
    }
    let ctx = context(op, plan, &[]).await;
    match run(op, HookName::BeforePromote, &ctx).await? {
        Some(r) if !r.passed() => {
            let stopped = Deploy::HookStoppedPromote { commit: short_sha(plan.release.commit.as_str()).to_owned(), cluster: plan.place.cluster.to_string(), hook: r.describe() };
            Err(failed(&r).retold(stopped).with_rolled_back(true))
        }
        _ => Ok(()),
    }
}

/// In place, `before_traffic` once the new instances run and before they join the load balancer (the first
/// round's). A failure is an error of the round, which removes the new instances as for any failure before the
/// point of no return.
pub async fn before_registering(op: &mut Op<'_>, plan: &PromotePlan, opts: &PromoteOptions, ids: &[InstanceId]) -> Result<()> {
    if opts.skip_hooks || !plan.place.in_place || op.env().hooks.command(HookName::BeforeTraffic).is_none() || passed_before(op, HookName::BeforeTraffic) {
        return Ok(());
    }
    let ctx = context(op, plan, ids).await;
    match run(op, HookName::BeforeTraffic, &ctx).await? {
        Some(r) if !r.passed() => Err(failed(&r)),
        _ => Ok(()),
    }
}

/// Blue/green on an asg cluster: `before_traffic` once the idle cluster's load balancer holds only the new group.
/// A failure (or a signal) is returned as it is: the caller puts the groups back (`ops::promote::asg`).
pub async fn before_traffic_idle(op: &mut Op<'_>, plan: &PromotePlan, opts: &PromoteOptions, ids: &[InstanceId]) -> Result<()> {
    if opts.skip_hooks || plan.place.in_place || op.env().hooks.command(HookName::BeforeTraffic).is_none() || passed_before(op, HookName::BeforeTraffic) {
        return Ok(());
    }
    let ctx = context(op, plan, ids).await;
    match run(op, HookName::BeforeTraffic, &ctx).await? {
        Some(r) if !r.passed() => Err(failed(&r)),
        _ => Ok(()),
    }
}

/// After a promote's rounds. Blue/green: `before_traffic` against the idle cluster, whose load balancer now holds
/// only the new fleet; a failure (or a Ctrl-C) removes the new fleet, and traffic never moved (the caller,
/// `promote::apply::swap_idle`, then registers the cluster's previous release again). In place:
/// `after_traffic`, whose failure is a warning on the record (the promote then says whether to roll back).
pub async fn after_deploy(op: &mut Op<'_>, plan: &PromotePlan, opts: &PromoteOptions, d: &mut PromoteDetails) -> Result<()> {
    if opts.skip_hooks {
        return Ok(());
    }
    if plan.place.in_place {
        if op.env().hooks.command(HookName::AfterTraffic).is_none() || passed_before(op, HookName::AfterTraffic) {
            return Ok(());
        }
        let ctx = context(op, plan, &d.new_instances).await;
        if let Some(r) = run(op, HookName::AfterTraffic, &ctx).await? {
            if !r.passed() {
                warn(op, &r, op.env().hooks.rollback_on_failure(false));
            }
        }
        return Ok(());
    }
    if op.env().hooks.command(HookName::BeforeTraffic).is_none() || passed_before(op, HookName::BeforeTraffic) {
        return Ok(());
    }
    let ctx = context(op, plan, &d.new_instances).await;
    let why = match run(op, HookName::BeforeTraffic, &ctx).await {
        Ok(Some(r)) if !r.passed() => failed(&r),
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::Interrupted => e,
        Err(e) => return Err(e),
    };
    let (what, kind) = (why.message().to_owned(), why.kind());
    let (commit, cluster) = (short_sha(plan.release.commit.as_str()).to_owned(), plan.place.cluster.to_string());
    let undo = d.new_instances.clone();
    op.progress(&format!("rolling back: removing the {} new instance(s) of {}; traffic was not moved", undo.len(), plan.place.cluster));
    if let Err(e) = crate::steps::fleet::deregister(op, &plan.place.target, &undo).await {
        op.progress(&format!("rolling back: deregistering from {} failed ({e}); terminating the new instances anyway", plan.place.target));
    }
    match crate::steps::fleet::terminate(op, &undo).await {
        Ok(()) => {
            d.new_instances.clear();
            op.back_before_no_return();
            Err(why.retold(Deploy::IdleRemoved { commit, cluster, why: what, kind, count: undo.len() }).with_rolled_back(true))
        }
        Err(c) => Err(why.retold(Deploy::IdleRemoveFailed { commit, cluster, why: what, kind, count: undo.len(), error: c.to_string() }).with_rolled_back(false)),
    }
}

