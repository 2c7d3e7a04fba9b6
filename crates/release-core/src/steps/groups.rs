//! Auto Scaling groups (asg fleets, issue 22): the only place that changes a launch template or a group, each effect
//! one function, each wait through the operation's clock. `new_version` and `create_group` make a release's fleet;
//! `attach_and_wait_healthy` gives it traffic; `disable` takes a replaced group out of the load balancer keeping its
//! instances (and healing) for a rollback; `restore` ends a switch on the new group; `retire` deletes a group the
//! careful way (out of the load balancer, emptied, deleted without ForceDelete).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::engine::runner::Op;
use crate::model::error::{Cause, Deploy, Error, Result};
use crate::model::ids::InstanceId;
use crate::model::ledger::Progress;
use crate::model::phase::Phase;
use crate::model::pipeline::LbTarget;
use crate::ports::{tags, ActivityStatus, AttachmentState, CapacityChange, Group, GroupSpec, HealthState, Lifecycle, Process, TemplateRef, TemplateSpec, CPU_POLICY};

/// What a disabled group keeps from running: scaling on alarms and schedules, zone rebalancing and refreshes. Healing
/// (Launch, Terminate, HealthCheck, ReplaceUnhealthy) stays on, and AddToLoadBalancer is never suspended: instances
/// launched while it is suspended are never registered later.
pub const DISABLED: [Process; 4] = [Process::AlarmNotification, Process::ScheduledActions, Process::AZRebalance, Process::InstanceRefresh];

/// The group named `name` of the app, as one DescribeAutoScalingGroups reads it now.
pub async fn read(op: &Op<'_>, name: &str) -> Result<Option<Group>> {
    Ok(op.cloud().groups.app_groups(&op.pipeline().app).await?.into_iter().find(|g| g.name == name))
}

fn gone(name: &str) -> Error {
    Error::from(Deploy::ScalingFailed { group: name.to_owned(), reason: "the group no longer exists".into() }).with_cause(Cause::Missing)
}

/// The template `template` (created when missing, with `tags`) gets a numbered version for the release; `token` (the
/// release id) makes a re-run get the same version back instead of a second one.
pub async fn new_version(op: &Op<'_>, template: &str, tags: &[(String, String)], spec: &TemplateSpec, token: &str) -> Result<TemplateRef> {
    let t = op.cloud().templates.ensure_template(template, tags).await?;
    let version = op.cloud().templates.create_version(&t.id, spec, token).await?;
    Ok(TemplateRef { id: t.id, version })
}

/// Creates the group in one call, then suspends AlarmNotification until the switch is over and puts the CPU policy
/// (`scaling.cpu`). A group of that name made by this release already (a re-run) is taken as it is.
pub async fn create_group(op: &Op<'_>, spec: &GroupSpec, cpu: Option<u8>) -> Result<()> {
    let groups = &op.cloud().groups;
    match groups.create(spec).await {
        Ok(()) => {}
        Err(e) if e.is(Cause::AlreadyExists) => {
            let mine = spec.tags.iter().find(|(k, _)| k == tags::RELEASE_ID).map(|(_, v)| v.as_str());
            let existing = read(op, &spec.name).await?;
            if existing.as_ref().and_then(|g| g.tags.get(tags::RELEASE_ID)).map(String::as_str) != mine {
                return Err(e);
            }
        }
        Err(e) => return Err(e),
    }
    groups.suspend(&spec.name, &[Process::AlarmNotification]).await?;
    if let Some(percent) = cpu {
        groups.put_cpu_policy(&spec.name, CPU_POLICY, percent).await?;
    }
    Ok(())
}

/// A failed scaling activity of the group, with AWS's reason: a launch that fails (capacity, a quota, a bad AMI)
/// is told at once, not after the deadline.
async fn failed_activity(op: &Op<'_>, name: &str) -> Result<Option<Error>> {
    let acts = op.cloud().groups.activities(name, 10).await?;
    Ok(acts.into_iter().find(|a| a.status == ActivityStatus::Failed).map(|a| {
        let reason = a.status_message.unwrap_or(a.description);
        Error::from(Deploy::ScalingFailed { group: name.to_owned(), reason }).with_cause(Cause::Capacity)
    }))
}

/// Polls until `desired` instances of the group are InService (unattached: no load balancer judges them yet), at
/// most `timeout`; the InService instances. `polls` counts the reads.
pub async fn wait_in_service(op: &mut Op<'_>, name: &str, desired: u32, timeout: Duration, polls: &mut u32) -> Result<Vec<InstanceId>> {
    let started = op.cloud().clock.now();
    let deadline = started.add(timeout);
    let mut last = usize::MAX;
    loop {
        op.check()?;
        *polls += 1;
        let g = read(op, name).await?.ok_or_else(|| gone(name))?;
        let ids: Vec<InstanceId> = g.instances.iter().filter(|i| i.lifecycle == Lifecycle::InService).map(|i| i.id.clone()).collect();
        if let Some(e) = failed_activity(op, name).await? {
            return Err(e);
        }
        let waiting = format!("InService {}/{desired}", ids.len());
        op.report(Progress { phase: Phase::WaitingRunning, waiting_for: Some(format!("group {name}: {waiting}")), phase_started: Some(started), ..Default::default() }).await?;
        if ids.len() >= desired as usize {
            op.progress(&format!("group {name}: {waiting}"));
            return Ok(ids);
        }
        if ids.len() != last {
            op.progress(&format!("group {name}: {waiting}"));
            last = ids.len();
        }
        if op.cloud().clock.now() >= deadline {
            return Err(Deploy::NotInService { group: name.to_owned(), in_service: ids.len(), desired, after: timeout }.into());
        }
        op.pause(op.session().poll).await?;
    }
}

/// Attaches the group to `target` (target group or classic ELB, one API family) and polls until at least `desired`
/// of its InService instances are, every one of them, healthy there, re-reading the group at each poll (a
/// replacement changes the ids), at most `timeout`. Targets the load balancer does not use (`Target.NotInUse`) and
/// failed scaling activities stop it at once. The healthy instances.
pub async fn attach_and_wait_healthy(op: &mut Op<'_>, name: &str, target: &LbTarget, desired: u32, timeout: Duration, polls: &mut u32) -> Result<Vec<InstanceId>> {
    let g = read(op, name).await?.ok_or_else(|| gone(name))?;
    if !g.load_balancers.contains(target) {
        op.cloud().groups.attach(name, std::slice::from_ref(target)).await?;
        op.progress(&format!("attached group {name} to {target}"));
    }
    let started = op.cloud().clock.now();
    let deadline = started.add(timeout);
    let mut last = usize::MAX;
    loop {
        op.check()?;
        *polls += 1;
        let g = read(op, name).await?.ok_or_else(|| gone(name))?;
        let want: BTreeSet<InstanceId> = g.instances.iter().filter(|i| i.lifecycle == Lifecycle::InService).map(|i| i.id.clone()).collect();
        let health = op.cloud().balancer.health(target).await?;
        let mine: Vec<_> = health.iter().filter(|h| want.contains(&h.id)).collect();
        let unused: Vec<String> =
            mine.iter().filter(|h| h.state == HealthState::Unused).map(|h| format!("{} ({})", h.id, h.reason.as_deref().unwrap_or("no reason given"))).collect();
        if !unused.is_empty() {
            return Err(Deploy::TargetsUnused { target: target.to_string(), unused }.into());
        }
        if let Some(e) = failed_activity(op, name).await? {
            return Err(e);
        }
        let healthy: Vec<InstanceId> = mine.iter().filter(|h| h.state == HealthState::Healthy).map(|h| h.id.clone()).collect();
        let waiting = format!("healthy {}/{}", healthy.len(), want.len().max(desired as usize));
        op.report(Progress { phase: Phase::WaitingHealthy, waiting_for: Some(format!("group {name}: {waiting}")), phase_started: Some(started), ..Default::default() }).await?;
        if want.len() >= desired as usize && healthy.len() == want.len() {
            op.progress(&format!("group {name}: {waiting}"));
            return Ok(healthy);
        }
        if healthy.len() != last {
            op.progress(&format!("group {name}: {waiting}"));
            last = healthy.len();
        }
        if op.cloud().clock.now() >= deadline {
            let sick: Vec<String> = mine
                .iter()
                .filter(|h| h.state != HealthState::Healthy)
                .take(5)
                .map(|h| format!("{} {:?}{}", h.id, h.state, h.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()))
                .collect();
            let unregistered = want.len() - mine.len();
            return Err(Deploy::Unhealthy { healthy: healthy.len(), total: want.len().max(desired as usize), target: target.to_string(), after: timeout, sick, unregistered }.into());
        }
        op.pause(op.session().poll).await?;
    }
}

/// Raises the group to `desired` (min pinned with it, during a switch): the serving group grew meanwhile.
pub async fn raise(op: &Op<'_>, name: &str, desired: u32) -> Result<()> {
    op.cloud().groups.set_capacity(name, &CapacityChange { min: Some(desired), desired: Some(desired), max: None }).await
}

/// Polls until `target` no longer lists the group as attached (its deregistration delay or connection draining is
/// honoured by AWS meanwhile), at most `patience`; past that it goes on and says so.
async fn wait_detached(op: &Op<'_>, name: &str, target: &LbTarget, patience: Duration) -> Result<()> {
    let deadline = op.cloud().clock.now().add(patience);
    let mut wait = Duration::from_secs(1);
    loop {
        let attached = op.cloud().groups.attachments(name).await?;
        if !attached.iter().any(|a| &a.target == target && a.state != AttachmentState::Removed) {
            return Ok(());
        }
        if op.cloud().clock.now() >= deadline {
            op.progress(&format!("group {name} still leaving {target} after {}; going on", crate::model::clock::format_duration(patience)));
            return Ok(());
        }
        // Taking traffic away finishes whatever comes: no signal cuts it short.
        op.sleep_through(wait).await;
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

/// Disables a replaced group: tagged with when (first, so that a run dying half-way leaves a group that is still
/// attached, or recognisably disabled, never one that looks like a stray), detached from `target` and waited out
/// until the attachment is gone, scaling on alarms and schedules suspended and min pinned to its desired capacity.
/// Healing stays on. Its min before, to record.
pub async fn disable(op: &Op<'_>, group: &Group, target: &LbTarget, drain: Duration) -> Result<u32> {
    let groups = &op.cloud().groups;
    let now = op.cloud().clock.now();
    groups.tag(&group.name, &[(tags::DISABLED_AT.to_owned(), now.millis().to_string())]).await?;
    if group.load_balancers.contains(target) {
        groups.detach(&group.name, std::slice::from_ref(target)).await?;
    }
    wait_detached(op, &group.name, target, drain + Duration::from_secs(120)).await?;
    groups.suspend(&group.name, &DISABLED).await?;
    if group.capacity.min != group.capacity.desired {
        groups.set_capacity(&group.name, &CapacityChange { min: Some(group.capacity.desired), desired: None, max: None }).await?;
    }
    op.progress(&format!("disabled group {} ({} instance(s) kept, out of {target})", group.name, group.capacity.desired));
    Ok(group.capacity.min)
}

/// Ends a switch on the group: min back to `min`, scaling on alarms resumed.
pub async fn restore(op: &Op<'_>, name: &str, min: u32) -> Result<()> {
    op.cloud().groups.set_capacity(name, &CapacityChange { min: Some(min), desired: None, max: None }).await?;
    op.cloud().groups.resume(name, &[Process::AlarmNotification]).await
}

/// Enables a disabled group again (a rollback inside the window): raised to at least `desired` with min pinned
/// there, attached to `target` and waited healthy (every InService instance), its suspended processes resumed and
/// the disabled-at tag removed. When it kept its size (the normal case) this launches nothing. The healthy instances.
pub async fn enable(op: &mut Op<'_>, group: &Group, target: &LbTarget, desired: u32, timeout: Duration, polls: &mut u32) -> Result<Vec<InstanceId>> {
    let want = desired.max(group.capacity.desired);
    if group.capacity.desired < want || group.capacity.min != want {
        let max = (group.capacity.max < want).then_some(want);
        op.cloud().groups.set_capacity(&group.name, &CapacityChange { min: Some(want), desired: Some(want), max }).await?;
    }
    let healthy = attach_and_wait_healthy(op, &group.name, target, want, timeout, polls).await?;
    let suspended: Vec<Process> = DISABLED.iter().copied().filter(|p| group.suspended.contains(p) && *p != Process::AlarmNotification).collect();
    if !suspended.is_empty() {
        op.cloud().groups.resume(&group.name, &suspended).await?;
    }
    op.cloud().groups.untag(&group.name, &[tags::DISABLED_AT.to_owned()]).await?;
    Ok(healthy)
}

/// Deletes a group the careful way: detached from `target` if it is attached (and waited out), min = desired = 0,
/// then, once its instances are gone, deleted without ForceDelete.
pub async fn retire(op: &Op<'_>, name: &str, target: &LbTarget, drain: Duration) -> Result<()> {
    let groups = &op.cloud().groups;
    let Some(g) = read(op, name).await? else { return Ok(()) };
    if g.load_balancers.contains(target) {
        groups.detach(name, std::slice::from_ref(target)).await?;
        wait_detached(op, name, target, drain + Duration::from_secs(120)).await?;
    }
    if g.capacity.desired != 0 || g.capacity.min != 0 {
        groups.set_capacity(name, &CapacityChange { min: Some(0), desired: Some(0), max: None }).await?;
    }
    // Terminating instances drain first (a target group's delay); bounded so a stuck group is an error, not a hang.
    let deadline = op.cloud().clock.now().add(drain + Duration::from_secs(600));
    let mut wait = Duration::from_secs(1);
    loop {
        let left = read(op, name).await?.map_or(0, |g| g.instances.len());
        if left == 0 {
            match groups.delete(name).await {
                Ok(()) => {
                    op.progress(&format!("deleted group {name}"));
                    return Ok(());
                }
                Err(e) if e.is(Cause::Missing) => return Ok(()),
                Err(e) if (e.is(Cause::InUse) || e.is(Cause::ScalingInProgress)) && op.cloud().clock.now() < deadline => {}
                Err(e) => return Err(e),
            }
        } else if op.cloud().clock.now() >= deadline {
            return Err(Deploy::GroupNotEmptied { group: name.to_owned(), left, after: drain + Duration::from_secs(600) }.into());
        }
        op.sleep_through(wait).await;
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}
