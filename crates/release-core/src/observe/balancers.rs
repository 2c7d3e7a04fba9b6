//! Load balancers as the engine sees them: the environment's, their DNS names, and the Route53 records that do not
//! alias the load balancer of their cluster (misdirected).

use crate::model::error::{Refused, Result};
use crate::model::ids::ClusterName;
use crate::model::pipeline::{Environment, LbTarget};
use crate::model::weights::Weights;
use crate::ports::{Cloud, LbInfo, Ownership, RecordSet, ServingLb, WeightedAlias};
use serde::Serialize;

use crate::observe::world::{self, LiveName};

/// The environment's load balancers that exist, in one describe per kind.
pub(crate) async fn env_lbs(cloud: &Cloud, env: &Environment) -> Result<Vec<LbInfo>> {
    let targets: Vec<LbTarget> = env.clusters().iter().map(|c| c.target.clone()).collect();
    cloud.balancer.describe(&targets).await
}

/// The records a change to `to` would send traffic through that do not alias their cluster's load balancer: those
/// it changes that take traffic after it. A record it lowers to 0 is not one: that takes traffic away from it (the
/// way out when the live cluster's record is the one pointing at a dead name).
pub fn misdirected_for(env: &Environment, live: &LiveName, to: &Weights, lbs: &[LbInfo]) -> Vec<Misdirected> {
    misdirected(env, &live.records, lbs)
        .into_iter()
        .filter(|m| ClusterName::parse(&m.cluster).is_ok_and(|c| to.has(&c) && to.is_live(&c) && to.weight(&c) != m.weight))
        .collect()
}

/// Refuses, from a fresh look at the live name and the load balancers, when weights `to` would send traffic
/// through a misdirected record (rollback asks before it promotes anything).
pub async fn check_records(cloud: &Cloud, env: &Environment, to: &Weights) -> Result<()> {
    let Some(live) = world::live_name(cloud, env).await? else { return Ok(()) };
    let lbs = env_lbs(cloud, env).await?;
    refuse_misdirected(env, &misdirected_for(env, &live, to, &lbs))
}

/// Refuses a change that would send traffic through misdirected records, naming each and the fix. `--force` does
/// not skip this: the name a record points at may not exist any more, and provision repoints it safely.
pub fn refuse_misdirected(env: &Environment, list: &[Misdirected]) -> Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    Err(Refused::Misdirected { records: list.iter().map(Misdirected::describe).collect(), env: env.name.to_string() }.into())
}

/// A DNS name as Route53 and ELB may spell the same one: lowercase, without the trailing dot and without the
/// `dualstack.` prefix the console puts in front of a load balancer's name.
fn dns_key(name: &str) -> String {
    let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
    n.strip_prefix("dualstack.").map(str::to_owned).unwrap_or(n)
}

/// Whether a weighted alias targets this load balancer: the DNS names compared without case, trailing dot or
/// `dualstack.` prefix; the hosted zone ids too when both are known.
pub fn aims_at(record: &WeightedAlias, lb: &LbInfo) -> bool {
    let zone_known = !record.target_zone_id.is_empty() && !lb.hosted_zone_id.is_empty();
    dns_key(&record.target_dns) == dns_key(&lb.dns_name) && (!zone_known || record.target_zone_id.eq_ignore_ascii_case(&lb.hosted_zone_id))
}

/// A cluster's weighted record whose alias target is not the cluster's load balancer as it is now (deleted and
/// created again with a new name, or pointed elsewhere by hand).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Misdirected {
    /// The live name.
    pub record: String,
    /// The cluster (the record's set identifier).
    pub cluster: String,
    /// The cluster's load balancer.
    pub target: LbTarget,
    /// Where the record points (its alias target's DNS name, and zone when only the zone differs).
    pub points_to: String,
    /// Where it should point: the load balancer's DNS name; none when the load balancer does not exist.
    pub should: Option<String>,
    /// The record's weight.
    pub weight: u8,
}

/// The records of `env`'s clusters in `records` that do not alias their cluster's load balancer among `lbs` (a
/// cluster whose load balancer is missing from `lbs` counts: its record points at nothing of the pipeline's).
pub fn misdirected(env: &Environment, records: &RecordSet, lbs: &[LbInfo]) -> Vec<Misdirected> {
    let mut out = Vec::new();
    for c in env.clusters() {
        let Some(r) = records.weighted.iter().find(|r| r.set_identifier == c.name.as_str()) else { continue };
        let lb = lbs.iter().find(|lb| lb.target == c.target);
        if lb.is_some_and(|lb| aims_at(r, lb)) {
            continue;
        }
        // Only the zone differs: say so, or the two names would read the same.
        let zone_only = lb.is_some_and(|lb| dns_key(&r.target_dns) == dns_key(&lb.dns_name));
        let (points_to, should) = match lb {
            Some(lb) if zone_only => (format!("{} (zone {})", r.target_dns, r.target_zone_id), Some(format!("{} (zone {})", lb.dns_name, lb.hosted_zone_id))),
            Some(lb) => (r.target_dns.clone(), Some(lb.dns_name.clone())),
            None => (r.target_dns.clone(), None),
        };
        out.push(Misdirected { record: r.name.clone(), cluster: c.name.to_string(), target: c.target.clone(), points_to, should, weight: r.weight });
    }
    out
}

impl Misdirected {
    /// `www.shop.test. [blue] points to X, not to target group shop-blue of cluster blue (Y)`.
    pub fn describe(&self) -> String {
        match &self.should {
            Some(s) => format!("{} [{}] points to {}, not to {} of cluster {} ({s})", self.record, self.cluster, self.points_to, self.target, self.cluster),
            None => format!("{} [{}] points to {}, and {} of cluster {} does not exist", self.record, self.cluster, self.points_to, self.target, self.cluster),
        }
    }
}
/// The load balancer's DNS name of a cluster (one describe), or empty when it cannot be read.
pub async fn lb_dns(cloud: &Cloud, target: &LbTarget) -> String {
    match cloud.balancer.describe(std::slice::from_ref(target)).await {
        Ok(lbs) => lbs.into_iter().next().map(|l| l.dns_name).unwrap_or_default(),
        Err(_) => String::new(),
    }
}


/// Whose a cluster's load balancer is, as provision treats it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// It does not exist: provision creates it, with the ownership tags.
    Missing,
    /// `release` made it for this app (its ownership tags say so), or an earlier `release` did, before it tagged
    /// what it made (then it sits in the cluster's own load balancer group, which only `release` makes).
    Managed,
    /// Someone else's (another app's, or made by hand, Terraform, CloudFormation): used as it is, never changed.
    External {
        /// The load balancer that serves it; none for a target group no load balancer forwards to.
        served_by: Option<ServingLb>,
    },
}

/// Whose `target` is, from what [`crate::ports::Balancer::ownership`] said of it (`found`), the app, and the id of
/// the cluster's own load balancer group when it exists.
pub fn owner(app: &str, found: Option<&Ownership>, own_group: Option<&str>) -> Owner {
    let Some(o) = found else { return Owner::Missing };
    if o.managed_by.as_deref() == Some(app) {
        return Owner::Managed;
    }
    let in_own_group = o.managed_by.is_none() && own_group.is_some_and(|g| o.served_by.as_ref().is_some_and(|s| s.security_groups.iter().any(|x| x == g)));
    if in_own_group {
        return Owner::Managed;
    }
    Owner::External { served_by: o.served_by.clone() }
}

/// `target group legacy-tg: external, served by ALB legacy-alb, used as it is`.
pub fn describe_external(target: &LbTarget, served_by: Option<&ServingLb>) -> String {
    match (target, served_by) {
        (LbTarget::TargetGroup(_), Some(lb)) => format!("{target}: external, served by {} {}, used as it is", lb.kind, lb.name),
        (_, _) => format!("{target}: external, used as it is"),
    }
}
