//! Which hooks an environment runs, and what they are told about it (the hook types are `model::hook`).

use crate::model::hook::{HookName, HookResult};
use crate::model::ids::ClusterName;
use crate::model::pipeline::Environment;
use crate::model::weights::Weights;

/// The environment's public name for hooks: the dns record without its final dot, or in place the load balancer's
/// DNS name.
pub fn live_name(env: &crate::model::pipeline::Environment, lb_dns: &str) -> String {
    match env.dns() {
        Some(d) => d.record.trim_end_matches('.').to_owned(),
        None => lb_dns.to_owned(),
    }
}

/// Whether a promote's record holds a failed `after_traffic` hook that asks for a rollback.
pub fn wants_rollback(env: &crate::model::pipeline::Environment, hooks: &[HookResult]) -> Option<HookResult> {
    hooks
        .iter()
        .rev()
        .find(|h| h.name == HookName::AfterTraffic)
        .filter(|h| !h.passed() && env.hooks.rollback_on_failure(env.is_blue_green()))
        .cloned()
}

/// The hooks a promote runs, in order, with their commands (`--plan` names them); `deploys`: whether it launches
/// anything (a plan with nothing to do runs none).
pub fn planned_for_promote(env: &Environment, deploys: bool) -> Vec<(HookName, String)> {
    if !deploys {
        return Vec::new();
    }
    let mut names = vec![HookName::BeforePromote, HookName::BeforeTraffic];
    if !env.is_blue_green() {
        names.push(HookName::AfterTraffic);
    }
    names.into_iter().filter_map(|n| env.hooks.command(n).map(|c| (n, c.to_owned()))).collect()
}

/// The hooks a switch to `weights` runs once they are in (`--plan` names them): `after_traffic` when the switch
/// makes `cluster` the only live cluster.
pub fn planned_for_switch(env: &Environment, cluster: &ClusterName, to: &Weights) -> Vec<(HookName, String)> {
    let full = to.live() == vec![cluster] && !to.is_partial();
    match env.hooks.command(HookName::AfterTraffic) {
        Some(c) if full => vec![(HookName::AfterTraffic, c.to_owned())],
        _ => Vec::new(),
    }
}
