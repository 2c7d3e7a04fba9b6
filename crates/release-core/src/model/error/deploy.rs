//! A deploy ran and failed (exit 8): instances not running or not healthy in time, an alarm, a failing hook.

use std::fmt;

/// What failed in a deploy.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Deploy {
    /// A hook that stops a deploy failed, timed out or could not be started (`before_*`).
    Hook {
        /// The hook (`before_traffic`).
        hook: String,
        /// How it ended, as [`HookResult::describe`](crate::model::hook::HookResult::describe) says it.
        what: String,
    },
    /// `before_promote` failed: nothing was launched.
    HookStoppedPromote {
        /// The commit, short.
        commit: String,
        /// The cluster promoted to.
        cluster: String,
        /// How the hook ended.
        hook: String,
    },
    /// Not every launched instance was running in time.
    NotRunning {
        /// How many run.
        running: usize,
        /// How many were launched.
        total: usize,
        /// The health timeout waited.
        after: std::time::Duration,
    },
    /// Not every new instance was healthy in the load balancer in time.
    Unhealthy {
        /// How many are healthy.
        healthy: usize,
        /// How many should be.
        total: usize,
        /// The load balancer (`target group hello-prod1`).
        target: String,
        /// The health timeout waited.
        after: std::time::Duration,
        /// Up to five of the others, with their state and reason (`i-0abc Unhealthy (Target.Timeout)`).
        sick: Vec<String>,
        /// How many of them the load balancer does not list at all.
        unregistered: usize,
    },
    /// A watched alarm went off (or vanished) between two batches of an in-place promote: it stopped, serving.
    AlarmBetweenBatches {
        /// What the watch saw (`alarm hello-5xx is in ALARM`).
        why: String,
        /// Batches done.
        done: u32,
        /// Batches in all.
        total: u32,
        /// The environment.
        env: String,
    },
    /// A promote failed before it launched anything. This and the variants up to `RegisterAgainFailed` tell what
    /// a promote did after `why` stopped it, and keep the kind of `why` (see [`Deploy::kind`]).
    NothingLaunched {
        /// The commit, short.
        commit: String,
        /// The cluster promoted to.
        cluster: String,
        /// What stopped it (`interrupted`, or the failure's message).
        why: String,
        /// The kind of what stopped it.
        kind: super::ErrorKind,
    },
    /// A promote failed and removed its new instances: the cluster serves what it served before.
    Removed {
        /// The commit, short.
        commit: String,
        /// The cluster promoted to.
        cluster: String,
        /// What stopped it.
        why: String,
        /// The kind of what stopped it.
        kind: super::ErrorKind,
        /// How many new instances were removed.
        count: usize,
    },
    /// A promote failed and removing its new instances failed too: they still run.
    RemoveFailed {
        /// The commit, short.
        commit: String,
        /// The cluster promoted to.
        cluster: String,
        /// What stopped it.
        why: String,
        /// The kind of what stopped it.
        kind: super::ErrorKind,
        /// How many new instances still run.
        count: usize,
        /// Why removing them failed.
        error: String,
    },
    /// A promote that lost its lock left its instances to the run that took its record over.
    TakenOver {
        /// What stopped it.
        why: String,
        /// The kind of what stopped it.
        kind: super::ErrorKind,
        /// The release the other run took over.
        release_id: String,
    },
    /// A promote that lost its lock could not claim its record to clean up.
    ClaimFailed {
        /// What stopped it.
        why: String,
        /// The kind of what stopped it.
        kind: super::ErrorKind,
        /// Why the claim failed.
        error: String,
    },
    /// Blue/green, `before_traffic` failed (or was interrupted): the new fleet was removed and traffic never moved.
    IdleRemoved {
        /// The commit, short.
        commit: String,
        /// The idle cluster promoted to.
        cluster: String,
        /// What stopped it.
        why: String,
        /// The kind of what stopped it.
        kind: super::ErrorKind,
        /// How many new instances were removed.
        count: usize,
    },
    /// Blue/green, `before_traffic` failed and removing the new fleet failed too: it still runs, taking no traffic.
    IdleRemoveFailed {
        /// The commit, short.
        commit: String,
        /// The idle cluster promoted to.
        cluster: String,
        /// What stopped it.
        why: String,
        /// The kind of what stopped it.
        kind: super::ErrorKind,
        /// How many new instances still run.
        count: usize,
        /// Why removing them failed.
        error: String,
    },
    /// Blue/green, after a failure: the idle cluster's previous instances, set aside, are registered again.
    RegisteredAgain {
        /// The failure as told so far.
        why: String,
        /// Its kind.
        kind: super::ErrorKind,
        /// How many instances were registered again.
        count: usize,
    },
    /// Blue/green, after a failure: registering the idle cluster's previous instances again failed.
    RegisterAgainFailed {
        /// The failure as told so far.
        why: String,
        /// Its kind.
        kind: super::ErrorKind,
        /// How many instances are left deregistered.
        count: usize,
        /// Why registering them failed.
        error: String,
        /// The idle cluster.
        cluster: String,
    },
    /// A launched instance is in a state other than running.
    InstanceNotRunning {
        /// The instance.
        id: String,
        /// Its state (`terminated`, `shutting-down`).
        state: String,
    },
    /// A rollout went back to the weights from before it (an alarm, a failing hook, unhealthy instances).
    RolloutWentBack {
        /// The rollout's release id.
        release_id: String,
        /// The environment.
        env: String,
        /// The cluster it rolled out to.
        cluster: String,
        /// The shares it went back to (`blue 100%`).
        to: String,
        /// Why.
        reason: String,
    },
    /// A rollout stopped by a failure or Ctrl-C (not its watch) and put the weights from before it back. Keeps the
    /// kind of what stopped it, as the promote clean-ups do (see [`Deploy::kind`]): an interrupted rollout that went
    /// back is still interrupted (exit 130), a failing AWS call still exit 6.
    RolloutStopped {
        /// The environment.
        env: String,
        /// The cluster it rolled out to.
        cluster: String,
        /// The step it stopped at, named.
        step: String,
        /// What stopped it (`interrupted`, or the failure's message).
        why: String,
        /// The kind of what stopped it.
        kind: super::ErrorKind,
        /// The shares put back (`blue 100%`).
        back: String,
    },
    /// A rollback promoted into a cluster that is not ready for traffic afterwards: traffic was not moved.
    NotReadyAfterPromote {
        /// The cluster.
        cluster: String,
        /// What is wrong with it (problems, then strays).
        problems: Vec<String>,
    },
    /// Blue/green `after_traffic` failed after a switch, and the traffic went back to the weights from before it.
    HookSwitchedBack {
        /// The hook (`after_traffic`).
        hook: String,
        /// How it ended, as [`HookResult::describe`](crate::model::hook::HookResult::describe) says it.
        what: String,
        /// The shares the traffic went back to (`blue 100%`).
        shares: String,
    },
    /// Blue/green `after_traffic` failed after a switch, and switching the traffic back failed too.
    HookSwitchBackFailed {
        /// The hook.
        hook: String,
        /// How it ended.
        what: String,
        /// Why switching back failed.
        error: String,
        /// The environment.
        env: String,
    },
    /// In place, `after_traffic` failed after a promote, and the automatic rollback put the previous release back.
    HookRolledBack {
        /// The hook.
        hook: String,
        /// How it ended.
        what: String,
        /// The rollback's release id.
        release_id: String,
        /// What the rollback did (its plan's summary).
        summary: String,
    },
    /// In place, `after_traffic` failed after a promote, and the automatic rollback failed too. Keeps the kind of
    /// the rollback's failure (see [`Deploy::kind`]): that failure is what the operator must act on now.
    HookRollbackFailed {
        /// The hook.
        hook: String,
        /// How it ended.
        what: String,
        /// The rollback's failure, as its message.
        why: String,
        /// Its kind.
        kind: super::ErrorKind,
    },
    /// A group's scaling activity failed (capacity, a quota, a bad AMI): reported at once, with AWS's reason.
    ScalingFailed {
        /// The group.
        group: String,
        /// AWS's reason (the activity's status message).
        reason: String,
    },
    /// The load balancer takes no traffic to some of a group's instances (`Target.NotInUse`: a zone it is not in).
    TargetsUnused {
        /// The load balancer.
        target: String,
        /// The instances, each with the reason.
        unused: Vec<String>,
    },
    /// A new group did not have its desired capacity InService in time.
    NotInService {
        /// The group.
        group: String,
        /// How many are InService.
        in_service: usize,
        /// Its desired capacity.
        desired: u32,
        /// The health timeout waited.
        after: std::time::Duration,
    },
    /// A group set to zero still had instances when its deletion gave up.
    GroupNotEmptied {
        /// The group.
        group: String,
        /// Instances left.
        left: usize,
        /// How long it waited.
        after: std::time::Duration,
    },
    /// An asg promote failed and deleted its new group: the cluster serves what it served before.
    GroupRemoved {
        /// The commit, short.
        commit: String,
        /// The cluster promoted to.
        cluster: String,
        /// What stopped it.
        why: String,
        /// The kind of what stopped it.
        kind: super::ErrorKind,
        /// The group deleted.
        group: String,
    },
    /// An asg promote failed and deleting its new group failed too.
    GroupRemoveFailed {
        /// The commit, short.
        commit: String,
        /// The cluster promoted to.
        cluster: String,
        /// What stopped it.
        why: String,
        /// The kind of what stopped it.
        kind: super::ErrorKind,
        /// The group left.
        group: String,
        /// Why deleting it failed.
        error: String,
    },
}

impl fmt::Display for Deploy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deploy::Hook { what, .. } => f.write_str(what),
            Deploy::HookStoppedPromote { commit, cluster, hook } => {
                write!(f, "promote of {commit} to {cluster} stopped: {hook}; nothing was launched and {cluster} serves what it served before")
            }
            Deploy::NotRunning { running, total, after } => {
                write!(f, "only {running} of {total} instances running after {}", crate::model::clock::format_duration(*after))
            }
            Deploy::Unhealthy { healthy, total, target, after, sick, unregistered } => write!(
                f,
                "only {healthy} of {total} new instances healthy in {target} after {}{}{}",
                crate::model::clock::format_duration(*after),
                if sick.is_empty() { String::new() } else { format!(": {}", sick.join(", ")) },
                if *unregistered > 0 { format!(" ({unregistered} not registered)") } else { String::new() }
            ),
            Deploy::AlarmBetweenBatches { why, done, total, env } => write!(
                f,
                "{why} after batch {done} of {total}: the promote stopped with {done} batch(es) done and env {env} serving (healthy, old and new instances together); `release rollback --env {env}` promotes the previous commit"
            ),
            Deploy::NothingLaunched { commit, cluster, why, .. } => {
                write!(f, "promote of {commit} to {cluster} failed: {why}; nothing was launched and {cluster} serves what it served before")
            }
            Deploy::Removed { commit, cluster, why, count, .. } => write!(
                f,
                "promote of {commit} to {cluster} failed: {why}; the {count} new instance(s) were removed and {cluster} serves what it served before"
            ),
            Deploy::RemoveFailed { commit, cluster, why, count, error, .. } => write!(
                f,
                "promote of {commit} to {cluster} failed: {why}; removing the {count} new instance(s) failed ({error}), so they still run; run the promote again to clean them up"
            ),
            Deploy::TakenOver { why, release_id, .. } => write!(f, "{why}; the run that took over release {release_id} keeps its instances"),
            Deploy::ClaimFailed { why, error, .. } => write!(f, "{why}; and claiming the record to clean up failed: {error}"),
            Deploy::IdleRemoved { commit, cluster, why, count, .. } => write!(
                f,
                "promote of {commit} to {cluster} failed: {why}; the {count} new instance(s) were removed, traffic was not moved, and {cluster} takes no traffic"
            ),
            Deploy::IdleRemoveFailed { commit, cluster, why, count, error, .. } => write!(
                f,
                "promote of {commit} to {cluster} failed: {why}; removing the {count} new instance(s) failed ({error}), so they still run in {cluster}, which takes no traffic; run the promote again"
            ),
            Deploy::RegisteredAgain { why, count, .. } => write!(f, "{why}; its {count} previous instance(s) are registered again"),
            Deploy::RegisterAgainFailed { why, count, error, cluster, .. } => write!(
                f,
                "{why}; registering its {count} previous instance(s) again failed ({error}); they still run: run the promote again, or register them by hand before switching to {cluster}"
            ),
            Deploy::InstanceNotRunning { id, state } => write!(f, "instance {id} is {state} instead of running"),
            Deploy::RolloutWentBack { release_id, env, cluster, to, reason } => {
                write!(f, "rollout {release_id} of {env} to {cluster} went back to {to}: {reason}")
            }
            Deploy::RolloutStopped { env, cluster, step, why, back, .. } => {
                write!(f, "rollout of {env} to {cluster} stopped at step {step}: {why}; the weights from before it were put back ({back})")
            }
            Deploy::NotReadyAfterPromote { cluster, problems } => {
                write!(f, "cluster {cluster} is not ready for traffic after the promote: {}; traffic was not moved", problems.join("; "))
            }
            Deploy::HookSwitchedBack { what, shares, .. } => write!(f, "{what}; traffic went back to {shares} in one Route53 change"),
            Deploy::HookSwitchBackFailed { what, error, env, .. } => {
                write!(f, "{what}; switching the traffic back failed ({error}); run `release rollback --env {env}`")
            }
            Deploy::HookRolledBack { what, release_id, summary, .. } => write!(f, "{what}; rolled back by release {release_id}: {summary}"),
            Deploy::HookRollbackFailed { what, why, .. } => write!(f, "{what}; the automatic rollback failed: {why}"),
            Deploy::ScalingFailed { group, reason } => write!(f, "group {group} failed to launch: {reason}"),
            Deploy::TargetsUnused { target, unused } => {
                write!(f, "{target} takes no traffic to {}; enable the load balancer in those zones or leave their subnets out", unused.join(", "))
            }
            Deploy::NotInService { group, in_service, desired, after } => write!(
                f,
                "only {in_service} of {desired} instances of group {group} InService after {}",
                crate::model::clock::format_duration(*after)
            ),
            Deploy::GroupNotEmptied { group, left, after } => write!(
                f,
                "group {group} still has {left} instance(s) {} after it was set to zero; run the command again to delete it",
                crate::model::clock::format_duration(*after)
            ),
            Deploy::GroupRemoved { commit, cluster, why, group, .. } => write!(
                f,
                "promote of {commit} to {cluster} failed: {why}; the new group {group} was deleted and {cluster} serves what it served before"
            ),
            Deploy::GroupRemoveFailed { commit, cluster, why, group, error, .. } => write!(
                f,
                "promote of {commit} to {cluster} failed: {why}; deleting the new group {group} failed ({error}); it takes no traffic: run the promote again to clean it up"
            ),
        }
    }
}

impl Deploy {
    /// A failed deploy (exit 8), except for the variants that tell what a promote did after another failure
    /// stopped it (`NothingLaunched` to `RegisterAgainFailed`, and a rollout's `RolloutStopped`): those keep the
    /// kind of that failure, since the clean-up is news about it, not a new failure (an interrupted promote that
    /// removed its instances is still interrupted, exit 130, and its record says so; AWS failing is still exit 6).
    /// `HookRollbackFailed` keeps the kind of the automatic rollback's failure, the one left to act on.
    pub fn kind(&self) -> super::ErrorKind {
        match self {
            Deploy::NothingLaunched { kind, .. }
            | Deploy::Removed { kind, .. }
            | Deploy::RemoveFailed { kind, .. }
            | Deploy::TakenOver { kind, .. }
            | Deploy::ClaimFailed { kind, .. }
            | Deploy::IdleRemoved { kind, .. }
            | Deploy::IdleRemoveFailed { kind, .. }
            | Deploy::RegisteredAgain { kind, .. }
            | Deploy::RegisterAgainFailed { kind, .. }
            | Deploy::RolloutStopped { kind, .. }
            | Deploy::HookRollbackFailed { kind, .. }
            | Deploy::GroupRemoved { kind, .. }
            | Deploy::GroupRemoveFailed { kind, .. } => *kind,
            _ => super::ErrorKind::DeployFailed,
        }
    }
}
