//! The checks made before traffic moves toward a cluster, in one place (DESIGN §5). Every path that raises a
//! cluster's share of traffic calls [`check`]: a switch and `--weight` (`switch::plan_from`), each rollout (its
//! first step is planned through the same switch plan), and an in-place promote before it registers anything
//! ([`check_in_place`]). A blue/green promote goes to an idle cluster (weight 0) and moves no traffic.
//!
//! Moving traffic *away* from a cluster is never held here: lowering its weight, a rollout or a failing hook going
//! back, and `release rollback` (the way back is always open; an alarm firing is usually why someone goes back).

use crate::model::error::{Refused, Result};
use crate::model::ids::ClusterName;
use crate::model::pipeline::{Cluster, Environment};
use crate::observe::alarms;
use std::collections::BTreeSet;

use crate::ports::{AlarmState, AlarmStatus, Cloud, Network};
use crate::observe::world::Readiness;
use crate::model::weights::Weights;
use crate::observe::world::Stray;

/// Whether going from `from` to `to` moves traffic toward `cluster`: its share of the live name rises.
pub fn toward(from: &Weights, to: &Weights, cluster: &ClusterName) -> bool {
    to.share(cluster) > from.share(cluster)
}

/// The pre-flight checks before traffic moves toward `cluster`: no watched alarm in ALARM (`--force` does not skip
/// this: the traffic would go where the alarm says something is wrong), then, unless `force`, nothing stray in its
/// load balancer and every instance ready (`ready`; `None` for an in-place promote, whose new instances do not exist
/// yet and take traffic only once healthy). `what` says what the traffic move is, for the refusal.
pub fn check(env: &Environment, cluster: &Cluster, ready: Option<&Readiness>, alarms: &[AlarmStatus], force: bool, what: &str) -> Result<()> {
    firing(env, alarms, what)?;
    let Some(ready) = ready.filter(|_| !force) else { return Ok(()) };
    if !ready.strays.is_empty() {
        let strays: Vec<String> = ready.strays.iter().map(Stray::describe).collect();
        return Err(Refused::Strays { target: cluster.target.to_string(), cluster: cluster.name.to_string(), strays }.into());
    }
    if !ready.problems.is_empty() {
        return Err(Refused::NotReady { cluster: cluster.name.to_string(), problems: ready.problems.clone() }.into());
    }
    Ok(())
}

/// An in-place promote's pre-flight, before it launches anything: its new instances will take traffic from the
/// load balancer. `alarms` as [`alarms`] (or a batch promote's, which must also exist) read them.
pub fn in_place(env: &Environment, cluster: &Cluster, alarms: &[AlarmStatus], batch: bool) -> Result<()> {
    let what = if batch { "a promote in batches would stop after its first batch" } else { "a promote in place would send traffic to its new instances while it fires" };
    check(env, cluster, None, alarms, false, what)
}

/// Refuses (exit 4), before anything is launched, instance subnets in zones the cluster's load balancer is not
/// enabled in (`served`): their instances would never be InService, so every promote would wait out
/// `health_timeout` and roll back, and a capacity fallback could move instances there. An empty `served` (a target
/// group no load balancer forwards to yet) cannot tell and refuses nothing.
pub fn zones_served(cluster: &Cluster, network: &Network, served: &BTreeSet<String>) -> Result<()> {
    if served.is_empty() {
        return Ok(());
    }
    let outside: Vec<String> =
        network.subnets.iter().filter(|s| !served.contains(&s.availability_zone)).map(|s| format!("{} ({})", s.id, s.availability_zone)).collect();
    if outside.is_empty() {
        return Ok(());
    }
    Err(Refused::ZoneNotServed { cluster: cluster.name.to_string(), target: cluster.target.to_string(), subnets: outside, served: served.iter().cloned().collect() }.into())
}

/// Refuses (exit 4) when a watched alarm is in ALARM now.
fn firing(env: &Environment, alarms: &[AlarmStatus], what: &str) -> Result<()> {
    let firing: Vec<&str> = alarms.iter().filter(|a| a.state == AlarmState::Alarm).map(|a| a.name.as_str()).collect();
    if firing.is_empty() {
        return Ok(());
    }
    Err(Refused::AlarmFiring { env: env.name.to_string(), firing: firing.into_iter().map(str::to_owned).collect(), what: what.to_owned() }.into())
}

/// An in-place promote's pre-flight ([`in_place`]), before anything is launched: the watched alarms of
/// `[env.NAME.rollout]` firing; with `--batch N` they must also exist (they are watched between batches).
pub async fn check_in_place(cloud: &Cloud, env: &Environment, cluster: &Cluster, batch: bool) -> Result<()> {
    if env.is_blue_green() {
        return Ok(());
    }
    let names: Vec<String> = env.rollout.as_ref().map(|r| r.alarms.clone()).unwrap_or_default();
    let states = alarms::read(cloud, &names).await?;
    if batch {
        alarms::require(env, &names, &states)?;
    }
    let alarms: Vec<_> = states.into_iter().filter(|a| a.state != AlarmState::Missing).collect();
    in_place(env, cluster, &alarms, batch)
}
