//! `release promote <sha> --env ENV`: launch fresh instances of the commit's AMI, put them behind the cluster's
//! load balancer once every one is running, retire the old ones once every new one is healthy.
//!
//! - [`plan`]: observe the world and decide ([`PromotePlan`], a plain value; `--plan` prints it);
//! - [`apply`]: carry a plan out inside the operation runner (lock, record, signals, waits).
//!
//! Invariants (DESIGN §5), each held here and proved by the tests:
//! - traffic reaches only healthy instances: new instances are registered only once running, and the old ones are
//!   deregistered only after every new one is healthy;
//! - a failure before old capacity is removed deregisters and terminates the new instances: the environment serves
//!   what it served before, and the ledger says failed;
//! - re-running after a crash converges: the unfinished record and its instances (found by tag) are adopted when
//!   they are for the same commit and settings, otherwise cleaned up; no fleet is launched twice;
//! - one environment, one operator: everything that changes AWS runs under the environment's lock.

pub mod apply;
pub mod asg;
pub mod hooks;
pub mod rollback;
pub mod plan;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::ids::{AmiId, AppName, ClusterName, CommitSha, EnvName, InstanceId};
use crate::ports::Subnet;

pub use apply::{apply, deploy};
pub use plan::{observe, plan, plan_from, PromotePlan, PromoteWorld};

/// How a promote ended, as its report (and `--output json`) says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromoteOutcome {
    /// `--plan`: nothing was done.
    Planned,
    /// The cluster already ran the commit with these settings (leftovers of failed runs may have been removed).
    Noop,
    /// An interrupted run's fleet was found serving and its record closed.
    Completed,
    /// Launched, swapped and retired.
    Succeeded,
}

impl PromoteOutcome {
    /// Stable name (JSON, text).
    pub fn as_str(self) -> &'static str {
        match self {
            PromoteOutcome::Planned => "planned",
            PromoteOutcome::Noop => "noop",
            PromoteOutcome::Completed => "completed",
            PromoteOutcome::Succeeded => "succeeded",
        }
    }
}

impl std::fmt::Display for PromoteOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for PromoteOutcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// How a promote is asked for.
#[derive(Clone, Debug, Default)]
pub struct PromoteOptions {
    /// The cluster to promote to; default: the only one, or the idle one.
    pub cluster: Option<String>,
    /// Replace N instances at a time.
    pub batch: Option<u32>,
    /// Skip the wait for a cluster that was live less than `settle` ago.
    pub force: bool,
    /// The region (for `ssm:` lookups in user data).
    pub region: String,
    /// Whether to wait in the queue for a held lock (`--wait`).
    pub wait: crate::engine::queue::Wait,
    /// Run no `[env.NAME.hooks]` (a rollback's promote: going back must not depend on the smoke tests of the
    /// release it leaves).
    pub skip_hooks: bool,
    /// `--override-gates --reason TEXT`: go through closed promotion gates, recorded with this reason.
    pub override_gates: Option<String>,
}

/// What a promote will do or did.
#[derive(Clone, Debug, Serialize)]
pub struct PromoteReport {
    /// The release (empty for a plan or a no-op).
    pub release_id: String,
    /// The app.
    pub app: AppName,
    /// The environment.
    pub env: EnvName,
    /// The cluster.
    pub cluster: ClusterName,
    /// The commit.
    pub commit: CommitSha,
    /// Its AMI.
    pub ami: AmiId,
    /// What the cluster ran before.
    pub from_commit: Option<CommitSha>,
    /// How it ended.
    pub outcome: PromoteOutcome,
    /// Instances launched.
    pub new_instances: Vec<InstanceId>,
    /// Old instances retired.
    pub retired_instances: Vec<InstanceId>,
    /// This app's strays retired with the old fleet.
    pub strays_retired: Vec<InstanceId>,
    /// The cluster's own instances terminated outside release (by hand?), deregistered with the old fleet.
    pub terminated_by_hand: Vec<InstanceId>,
    /// Instances of an unfinished release this run adopted.
    pub adopted: Vec<InstanceId>,
    /// Instances of failed or abandoned releases removed.
    pub cleaned: Vec<InstanceId>,
    /// The launches, per subnet (planned).
    pub launches: Vec<PlannedLaunch>,
    /// Seconds per phase.
    pub seconds: BTreeMap<String, f64>,
    /// AWS calls made by the waits (running, healthy): bounded by timeout / poll interval, not by the fleet.
    pub polls: u32,
    /// Lease renewals every 30 s while the promote ran (one call each): bounded by how long it took, as polls are.
    pub renewals: u32,
    /// Whether the settle wait was skipped with --force.
    pub forced: bool,
    /// The hooks it ran (`[env.NAME.hooks]`), in order.
    pub hooks: Vec<crate::model::hook::HookResult>,
}

/// One RunInstances call of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlannedLaunch {
    /// The subnet.
    pub subnet: String,
    /// Its zone.
    pub availability_zone: String,
    /// How many instances.
    pub count: u32,
}

/// Splits `count` over the subnets so that the fleet's zones end as even as they can: each instance goes to the
/// zone holding the fewest of the fleet so far (`have`: its instances per zone, adopted or launched by an earlier
/// round or attempt), ties to the first, and there to its subnet with the fewest planned. With nothing yet, the
/// first `count % n` subnets take one more than the others.
pub fn spread(count: u32, subnets: &[Subnet], have: &BTreeMap<String, u32>) -> Vec<PlannedLaunch> {
    let mut per_zone: BTreeMap<&str, u32> = subnets.iter().map(|s| (s.availability_zone.as_str(), have.get(&s.availability_zone).copied().unwrap_or(0))).collect();
    let mut planned = vec![0u32; subnets.len()];
    for _ in 0..count {
        let Some(i) = (0..subnets.len()).min_by_key(|&i| (per_zone[subnets[i].availability_zone.as_str()], planned[i], i)) else { break };
        planned[i] += 1;
        *per_zone.entry(subnets[i].availability_zone.as_str()).or_default() += 1;
    }
    subnets
        .iter()
        .zip(planned)
        .filter(|(_, n)| *n > 0)
        .map(|(s, count)| PlannedLaunch { subnet: s.id.clone(), availability_zone: s.availability_zone.clone(), count })
        .collect()
}

/// How many of `ids` each zone holds, as `zones` (instance -> zone) knows them.
pub fn per_zone<'a>(ids: impl IntoIterator<Item = &'a InstanceId>, zones: &BTreeMap<InstanceId, String>) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for z in ids.into_iter().filter_map(|i| zones.get(i)).filter(|z| !z.is_empty()) {
        *out.entry(z.clone()).or_default() += 1;
    }
    out
}
