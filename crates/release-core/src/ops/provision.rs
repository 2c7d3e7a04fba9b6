//! `release provision`: observe what an environment needs in the cloud, plan what is missing or differs, apply it
//! under the environment's lock. Re-running is always safe: every action is decided from a fresh observation, and
//! a second run plans nothing.
//!
//! Per cluster it owns two security groups: `<app>-<cluster>-lb` (the listener port, 80, from `[deploy] allow`) for
//! the load balancer, and `<app>-<cluster>-instances` (the app port from the load balancer's group only) for the
//! instances; `[deploy] security_groups` are added to the instances at launch. Existing load balancers are
//! converged to the pipeline: health check, instance port, draining / deregistration delay, cross-zone balancing,
//! security groups.
//!
//! Each cluster's weighted record must alias the cluster's load balancer as it is now: a load balancer deleted and
//! created again has a new DNS name, and a record left on the old one sends its traffic to a name that no longer
//! answers. Provision repoints such a record (keeping its weight); switch refuses to send traffic through one;
//! status points it out ([`misdirected`]).

use crate::steps::infra;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::error::{Error, Input, Internal, NotFound, Refused, Result, ResultExt};
use crate::model::ledger::{Action as RecordAction, ProvisionDetails};
use crate::model::pipeline::{Cluster, DeploySettings, DnsSettings, Environment, LbTarget, Pipeline};
use crate::ports::{tags, Cloud, IngressRule, LbInfo, LbSpec, Network, Ownership, RecordChange, RecordSet, RuleSource, SecurityGroup, WeightedAlias, ZoneId};
use crate::engine::runner::{self, Op, OpSpec};
use crate::observe::balancers::misdirected;
use crate::observe::balancers::aims_at;
use crate::observe::balancers::{describe_external, owner, Owner};
use crate::model::pipeline::launch::group_name;
use crate::model::pipeline::launch::GroupRole;
use crate::engine::session::Session;

/// The port load balancers listen on (with a certificate: the port an ALB redirects to HTTPS).
pub const LISTENER_PORT: u16 = 80;

/// The port of HTTPS listeners.
pub const TLS_PORT: u16 = 443;

/// Where a planned rule's traffic comes from: a CIDR, or a group by name (it may not exist yet).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum From {
    /// An IPv4 block.
    Cidr(String),
    /// A security group of this plan, by name.
    Group(String),
}

/// One ingress rule as planned.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PlannedRule {
    /// The TCP port.
    pub port: u16,
    /// From where.
    pub from: From,
}

impl std::fmt::Display for PlannedRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.from {
            From::Cidr(c) => write!(f, "tcp/{} from {c}", self.port),
            From::Group(g) => write!(f, "tcp/{} from group {g}", self.port),
        }
    }
}

/// One change provision makes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// The ledger table (and locks).
    CreateLedgerTable {
        /// Its name.
        table: String,
    },
    /// A security group of a cluster.
    CreateSecurityGroup {
        /// The cluster.
        cluster: String,
        /// Whose.
        role: GroupRole,
        /// Its name.
        name: String,
    },
    /// Ingress rules a group lacks.
    AllowIngress {
        /// The group, by name.
        group: String,
        /// The rules.
        rules: Vec<PlannedRule>,
    },
    /// Ingress rules a group has but the pipeline no longer wants.
    RevokeIngress {
        /// The group, by name.
        group: String,
        /// The rules.
        rules: Vec<PlannedRule>,
    },
    /// A cluster's load balancer or target group (with its ALB and listener).
    CreateLoadBalancer {
        /// The cluster.
        cluster: String,
        /// What.
        target: LbTarget,
        /// The instance port.
        port: u16,
        /// The health check path.
        health_path: String,
        /// The HTTPS listener's certificate; none: HTTP.
        #[serde(skip_serializing_if = "Option::is_none")]
        certificate: Option<String>,
        /// Its TLS policy.
        #[serde(skip_serializing_if = "Option::is_none")]
        tls_policy: Option<String>,
    },
    /// An existing load balancer whose settings differ from the pipeline's.
    ConfigureLoadBalancer {
        /// The cluster.
        cluster: String,
        /// What.
        target: LbTarget,
        /// What changes, in words.
        changes: Vec<String>,
    },
    /// The public hosted zone.
    CreateHostedZone {
        /// Its name.
        zone: String,
    },
    /// One weighted alias per cluster; the first cluster takes all the traffic when the name is new.
    CreateLiveRecord {
        /// The live name.
        record: String,
        /// The cluster.
        cluster: String,
        /// Its load balancer.
        target: LbTarget,
        /// Its weight.
        weight: u8,
    },
    /// The record of a cluster no longer in the file, at weight 0.
    RemoveLiveRecord {
        /// The live name.
        record: String,
        /// The cluster it was for.
        cluster: String,
    },
    /// A cluster's weighted alias that points elsewhere than the cluster's load balancer, pointed at it again with
    /// its weight kept.
    RepointLiveRecord {
        /// The live name.
        record: String,
        /// The cluster.
        cluster: String,
        /// Its load balancer.
        target: LbTarget,
        /// Where the record points now.
        from: String,
        /// The load balancer's DNS name (none: the load balancer is created by this plan).
        to: Option<String>,
        /// Its weight, kept.
        weight: u8,
    },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rules = |r: &[PlannedRule]| r.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        match self {
            Action::CreateLedgerTable { table } => write!(f, "create DynamoDB table {table} (ledger and locks)"),
            Action::CreateSecurityGroup { cluster, role, name } => {
                write!(f, "create security group {name} for cluster {cluster}'s {}", if *role == GroupRole::Lb { "load balancer" } else { "instances" })
            }
            Action::AllowIngress { group, rules: r } => write!(f, "allow {} into {group}", rules(r)),
            Action::RevokeIngress { group, rules: r } => write!(f, "revoke {} from {group} (no longer in the pipeline)", rules(r)),
            Action::CreateLoadBalancer { cluster, target: LbTarget::ClassicElb(n), port, health_path, certificate: None, .. } => {
                write!(f, "create classic ELB {n} for cluster {cluster} (HTTP {LISTENER_PORT} -> {port}, health {health_path})")
            }
            Action::CreateLoadBalancer { cluster, target: LbTarget::ClassicElb(n), port, health_path, certificate: Some(cert), tls_policy } => write!(
                f,
                "create classic ELB {n} for cluster {cluster} (HTTPS {TLS_PORT} -> {port} with certificate {cert}, TLS policy {}, health {health_path})",
                tls_policy.as_deref().unwrap_or("")
            ),
            Action::CreateLoadBalancer { cluster, target: LbTarget::TargetGroup(n), port, health_path, certificate: None, .. } => {
                write!(f, "create target group {n} with an ALB and listener for cluster {cluster} (HTTP {LISTENER_PORT} -> {port}, health {health_path})")
            }
            Action::CreateLoadBalancer { cluster, target: LbTarget::TargetGroup(n), port, health_path, certificate: Some(cert), tls_policy } => write!(
                f,
                "create target group {n} with an ALB and listeners for cluster {cluster} (HTTPS {TLS_PORT} -> {port} with certificate {cert}, TLS policy {}; HTTP {LISTENER_PORT} redirects to HTTPS; health {health_path})",
                tls_policy.as_deref().unwrap_or("")
            ),
            Action::ConfigureLoadBalancer { cluster, target, changes } => write!(f, "configure {target} of cluster {cluster}: {}", changes.join("; ")),
            Action::CreateHostedZone { zone } => write!(f, "create Route53 hosted zone {zone}"),
            Action::CreateLiveRecord { record, cluster, target, weight } => write!(f, "create weighted alias {record} [{cluster}] -> {target}, weight {weight}"),
            Action::RemoveLiveRecord { record, cluster } => {
                write!(f, "remove weighted alias {record} [{cluster}] (cluster {cluster} is no longer in the pipeline; weight 0)")
            }
            Action::RepointLiveRecord { record, cluster, target, from, to, weight } => match to {
                Some(to) => write!(f, "repoint weighted alias {record} [{cluster}] from {from} to {to} ({target}; weight {weight} kept)"),
                None => write!(f, "repoint weighted alias {record} [{cluster}] from {from} to the new {target} (weight {weight} kept)"),
            },
        }
    }
}

/// What provision will do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The app.
    pub app: String,
    /// The environment.
    pub env: String,
    /// The changes, in order.
    pub actions: Vec<Action>,
    /// What provision found and leaves alone, and why (a record of a removed cluster that still takes traffic).
    pub notes: Vec<String>,
    /// Name servers of a hosted zone it created (delegate the domain to them).
    pub name_servers: Vec<String>,
}

/// The rules a cluster's groups should have. The instances of an external load balancer admit its security
/// groups (read, never changed), or the clients of `allow` when it has none (an NLB passes their addresses on).
fn wanted_rules(pipeline: &Pipeline, cluster: &Cluster, role: GroupRole, owner: &Owner) -> Vec<PlannedRule> {
    let port = cluster.deploy.port;
    match (role, owner) {
        (GroupRole::Lb, _) => listener_ports(cluster)
            .into_iter()
            .flat_map(|port| cluster.deploy.allow.iter().map(move |c| PlannedRule { port, from: From::Cidr(c.clone()) }))
            .collect(),
        (GroupRole::Instances, Owner::External { served_by: Some(lb) }) if lb.security_groups.is_empty() => {
            cluster.deploy.allow.iter().map(|c| PlannedRule { port, from: From::Cidr(c.clone()) }).collect()
        }
        (GroupRole::Instances, Owner::External { served_by: Some(lb) }) => lb.security_groups.iter().map(|g| PlannedRule { port, from: From::Group(g.clone()) }).collect(),
        (GroupRole::Instances, _) => vec![PlannedRule { port, from: From::Group(group_name(pipeline, cluster, GroupRole::Lb)) }],
    }
}

/// The ports a cluster's load balancer listens on: HTTPS 443 with a certificate (and 80 on an ALB, which
/// redirects it to HTTPS), else HTTP 80.
pub fn listener_ports(cluster: &Cluster) -> Vec<u16> {
    match (&cluster.deploy.certificate, cluster.target_is_alb()) {
        (Some(_), true) => vec![TLS_PORT, LISTENER_PORT],
        (Some(_), false) => vec![TLS_PORT],
        (None, _) => vec![LISTENER_PORT],
    }
}

/// Refuses a certificate that does not exist in the region, is not ISSUED, or does not cover the live name, before
/// anything is created. External load balancers keep their own listeners, so theirs are not asked about.
async fn check_certificates(cloud: &Cloud, env: &Environment, owners: &BTreeMap<String, Owner>, notes: &mut Vec<String>) -> Result<()> {
    for c in env.clusters() {
        let Some(arn) = &c.deploy.certificate else { continue };
        if matches!(owners.get(c.name.as_str()), Some(Owner::External { .. })) {
            notes.push(format!("certificate of cluster {} is not used: {} is external and keeps its own listeners", c.name, c.target));
            continue;
        }
        let problem = match cloud.certificates.certificate(arn).await? {
            None => Some("does not exist in this region; request or import it in ACM, or fix `certificate`".to_owned()),
            Some(cert) if cert.status != "ISSUED" => Some(format!("is {}, not ISSUED; finish its validation in ACM, or name an issued certificate", cert.status)),
            Some(cert) => env.dns().filter(|dns| !cert.covers(&dns.record)).map(|dns| {
                format!("does not cover {} (it covers {}); request one for that name", dns.record, cert.names.join(", "))
            }),
        };
        if let Some(problem) = problem {
            return Err(Input::Certificate { cluster: c.name.to_string(), arn: arn.clone(), problem }.into());
        }
    }
    Ok(())
}

/// The roles a cluster's own groups play: an external load balancer needs no group of release's.
fn roles(owner: &Owner) -> &'static [GroupRole] {
    match owner {
        Owner::External { .. } => &[GroupRole::Instances],
        _ => &[GroupRole::Lb, GroupRole::Instances],
    }
}

/// Whose each cluster's load balancer is (by cluster name), with a note for each external one. Refuses an
/// external target group no load balancer serves, and blue/green clusters served by one load balancer.
fn owners(pipeline: &Pipeline, env: &Environment, groups: &[SecurityGroup], found: &[Ownership], notes: &mut Vec<String>) -> Result<BTreeMap<String, Owner>> {
    let mut out = BTreeMap::new();
    let mut by_lb: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in env.clusters() {
        let own_group = groups.iter().find(|g| g.name == group_name(pipeline, c, GroupRole::Lb)).map(|g| g.id.as_str());
        let o = owner(pipeline.app.as_str(), found.iter().find(|o| o.target == c.target), own_group);
        let lb = match (&o, &c.target) {
            (Owner::External { served_by: Some(lb) }, _) => format!("{} {}", lb.kind, lb.name),
            (Owner::External { served_by: None }, _) => {
                return Err(Refused::ExternalUnserved { target: c.target.to_string(), cluster: c.name.to_string() }.into());
            }
            (_, LbTarget::ClassicElb(n)) => format!("classic ELB {n}"),
            (_, LbTarget::TargetGroup(n)) => format!("ALB {n}"),
        };
        by_lb.entry(lb).or_default().push(c.name.to_string());
        if let Owner::External { served_by } = &o {
            notes.push(describe_external(&c.target, served_by.as_ref()));
            match served_by {
                Some(lb) if lb.security_groups.is_empty() => notes.push(format!(
                    "{} {} has no security groups: the instances of cluster {} admit `allow` ({}) on port {}",
                    lb.kind,
                    lb.name,
                    c.name,
                    c.deploy.allow.join(", "),
                    c.deploy.port
                )),
                Some(lb) => notes.push(format!(
                    "the instances of cluster {} admit the security groups of {} {} ({}) on port {}; those groups are read, never changed",
                    c.name,
                    lb.kind,
                    lb.name,
                    lb.security_groups.join(", "),
                    c.deploy.port
                )),
                None => {}
            }
        }
        out.insert(c.name.to_string(), o);
    }
    if env.dns().is_some() {
        if let Some((lb, clusters)) = by_lb.into_iter().find(|(_, cs)| cs.len() > 1) {
            return Err(Refused::SharedLoadBalancer { env: env.name.to_string(), lb, clusters }.into());
        }
    }
    Ok(out)
}

/// The planned form of an existing rule (a group source by name when it is one of `groups`).
fn planned(rule: &IngressRule, groups: &[SecurityGroup]) -> PlannedRule {
    let from = match &rule.source {
        RuleSource::Cidr(c) => From::Cidr(c.clone()),
        RuleSource::Group(id) => From::Group(groups.iter().find(|g| &g.id == id).map_or_else(|| id.clone(), |g| g.name.clone())),
    };
    PlannedRule { port: rule.port, from }
}

/// The load balancer configuration the pipeline asks for (`lb_group`: its security group's id, when it exists).
pub fn lb_spec(cluster: &Cluster, lb_group: Option<&str>) -> LbSpec {
    LbSpec {
        port: cluster.deploy.port,
        health_path: cluster.deploy.health_path.clone(),
        health: cluster.deploy.health.clone(),
        drain: cluster.deploy.drain,
        cross_zone: true,
        security_groups: lb_group.map(|g| vec![g.to_owned()]).unwrap_or_default(),
        internal: cluster.deploy.internal,
        certificate: cluster.deploy.certificate.clone(),
        tls_policy: cluster.deploy.certificate.as_ref().map(|_| {
            cluster.deploy.tls_policy.clone().unwrap_or_else(|| DeploySettings::default_tls_policy(!cluster.target_is_alb()).to_owned())
        }),
    }
}

/// The networks of a cluster: (instances', load balancer's).
async fn networks(cloud: &Cloud, cluster: &Cluster, cache: &mut BTreeMap<Vec<String>, Network>) -> Result<(Network, Network)> {
    let mut get = async |subnets: &[String]| -> Result<Network> {
        if let Some(n) = cache.get(subnets) {
            return Ok(n.clone());
        }
        let n = cloud.fleet.network(subnets).await?;
        cache.insert(subnets.to_vec(), n.clone());
        Ok(n)
    };
    let inst = get(&cluster.deploy.subnets).await?;
    let lb = get(cluster.deploy.lb_subnets()).await?;
    Ok((inst, lb))
}

/// Observes the cloud and returns what `env` still needs.
pub async fn plan(cloud: &Cloud, pipeline: &Pipeline, env: &Environment) -> Result<Plan> {
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    if !cloud.ledger.table_exists(&pipeline.ledger_table).await? {
        actions.push(Action::CreateLedgerTable { table: pipeline.ledger_table.clone() });
    }
    let mut cache = BTreeMap::new();
    let groups = observe_groups(cloud, pipeline, env, &mut cache).await?;
    let targets: Vec<LbTarget> = env.clusters().iter().map(|c| c.target.clone()).collect();
    let found = cloud.balancer.ownership(&targets).await?;
    let owners = owners(pipeline, env, &groups, &found, &mut notes)?;
    check_certificates(cloud, env, &owners, &mut notes).await?;
    actions.extend(group_actions(pipeline, env, &groups, &owners));
    let existing = cloud.balancer.describe(&targets).await?;
    for c in env.clusters() {
        served_zones(cloud, c, &existing, &mut cache).await?;
    }
    for c in env.clusters() {
        if matches!(owners.get(c.name.as_str()), Some(Owner::External { .. })) {
            continue;
        }
        actions.extend(lb_action(cloud, pipeline, c, &groups, &existing, &mut notes).await?);
    }
    if let Some(dns) = env.dns() {
        actions.extend(record_actions(cloud, env, dns, &existing, &mut notes).await?);
    }
    Ok(Plan { app: pipeline.app.to_string(), env: env.name.to_string(), actions, notes, name_servers: Vec::new() })
}

/// Refuses, before anything is written, instance subnets in zones the cluster's load balancer is not enabled in:
/// the zones of the one that exists, or of the `lb_subnets` it will be created in (two of them in one zone are
/// refused first: the create call would be).
async fn served_zones(cloud: &Cloud, c: &Cluster, existing: &[LbInfo], cache: &mut BTreeMap<Vec<String>, Network>) -> Result<()> {
    let (inst, lb) = networks(cloud, c, cache).await?;
    let served: std::collections::BTreeSet<String> = if existing.iter().any(|l| l.target == c.target) {
        cloud.balancer.zones(&c.target).await?
    } else {
        one_subnet_per_zone(c, &lb)?;
        lb.subnets.iter().map(|s| s.availability_zone.clone()).collect()
    };
    crate::observe::preflight::zones_served(c, &inst, &served)
}

/// Two load balancer subnets in one zone, which CreateLoadBalancer refuses.
fn one_subnet_per_zone(c: &Cluster, lb: &Network) -> Result<()> {
    let mut by_zone: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for s in &lb.subnets {
        by_zone.entry(s.availability_zone.as_str()).or_default().push(s.id.clone());
    }
    match by_zone.into_iter().find(|(_, subnets)| subnets.len() > 1) {
        Some((zone, subnets)) => Err(Input::LbSubnetsSameZone { cluster: c.name.to_string(), zone: zone.to_owned(), subnets }.into()),
        None => Ok(()),
    }
}

/// The clusters' security groups that exist, per VPC in one describe; refuses networks a cluster cannot use.
async fn observe_groups(cloud: &Cloud, pipeline: &Pipeline, env: &Environment, cache: &mut BTreeMap<Vec<String>, Network>) -> Result<Vec<SecurityGroup>> {
    let mut by_vpc: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in env.clusters() {
        let (inst, lb) = networks(cloud, c, cache).await?;
        if inst.vpc_id != lb.vpc_id {
            return Err(Input::LbSubnetsSpanVpcs { cluster: c.name.to_string(), vpc: inst.vpc_id.clone(), lb_vpc: lb.vpc_id.clone() }.into());
        }
        if c.target_is_alb() && lb.subnets.iter().map(|s| &s.availability_zone).collect::<std::collections::BTreeSet<_>>().len() < 2 {
            return Err(Input::LbSubnetsOneZone { cluster: c.name.to_string() }.into());
        }
        let names = by_vpc.entry(inst.vpc_id.clone()).or_default();
        names.push(group_name(pipeline, c, GroupRole::Lb));
        names.push(group_name(pipeline, c, GroupRole::Instances));
    }
    let mut groups: Vec<SecurityGroup> = Vec::new();
    for (vpc, names) in &by_vpc {
        groups.extend(cloud.firewall.groups(vpc, names).await?);
    }
    Ok(groups)
}

/// The groups to create and the rules to allow or revoke, from the groups that exist.
fn group_actions(pipeline: &Pipeline, env: &Environment, groups: &[SecurityGroup], owners: &BTreeMap<String, Owner>) -> Vec<Action> {
    let mut actions = Vec::new();
    for c in env.clusters() {
        let owner = owners.get(c.name.as_str()).unwrap_or(&Owner::Missing);
        for &role in roles(owner) {
            let name = group_name(pipeline, c, role);
            let want = wanted_rules(pipeline, c, role, owner);
            match groups.iter().find(|g| g.name == name) {
                None => {
                    actions.push(Action::CreateSecurityGroup { cluster: c.name.to_string(), role, name: name.clone() });
                    actions.push(Action::AllowIngress { group: name, rules: want });
                }
                Some(g) => {
                    let have: Vec<PlannedRule> = g.ingress.iter().map(|r| planned(r, groups)).collect();
                    let missing: Vec<PlannedRule> = want.iter().filter(|r| !have.contains(r)).cloned().collect();
                    let extra: Vec<PlannedRule> = have.iter().filter(|r| !want.contains(r)).cloned().collect();
                    if !missing.is_empty() {
                        actions.push(Action::AllowIngress { group: name.clone(), rules: missing });
                    }
                    if !extra.is_empty() {
                        actions.push(Action::RevokeIngress { group: name, rules: extra });
                    }
                }
            }
        }
    }
    actions
}

/// A cluster's load balancer: created when missing, else configured where its settings differ from the pipeline's.
async fn lb_action(cloud: &Cloud, pipeline: &Pipeline, c: &Cluster, groups: &[SecurityGroup], existing: &[LbInfo], notes: &mut Vec<String>) -> Result<Option<Action>> {
    if !existing.iter().any(|lb| lb.target == c.target) {
        let spec = lb_spec(c, None);
        return Ok(Some(Action::CreateLoadBalancer {
            cluster: c.name.to_string(),
            target: c.target.clone(),
            port: c.deploy.port,
            health_path: c.deploy.health_path.clone(),
            certificate: spec.certificate,
            tls_policy: spec.tls_policy,
        }));
    }
    let lb_group = groups.iter().find(|g| g.name == group_name(pipeline, c, GroupRole::Lb)).map(|g| g.id.as_str());
    let mut actual = cloud.balancer.config(&c.target).await?;
    let mut want = lb_spec(c, lb_group);
    if c.target_is_alb() && actual.port != want.port {
        // A target group's port is fixed at creation; targets are registered with the app port, which the
        // health check follows (traffic-port), so a new port needs no new group.
        notes.push(format!("target group {} was created for port {}; instances are registered on port {} (its health check follows them)", c.target.name(), actual.port, want.port));
        actual.port = want.port;
    }
    if want.internal != actual.internal {
        let scheme = |internal: bool| if internal { "internal" } else { "internet-facing" };
        notes.push(format!(
            "{} of cluster {} is {}, the pipeline says {}: a load balancer's scheme is fixed when it is made, so this needs a new load balancer (with a new DNS name); it is left as it is",
            c.target,
            c.name,
            scheme(actual.internal),
            scheme(want.internal)
        ));
        want.internal = actual.internal;
    }
    if lb_group.is_none() {
        // The group is created by this plan: its id is known only then.
        want.security_groups = vec![format!("{} (new)", group_name(pipeline, c, GroupRole::Lb))];
    }
    let changes = want.differences(&actual);
    Ok((!changes.is_empty()).then(|| Action::ConfigureLoadBalancer { cluster: c.name.to_string(), target: c.target.clone(), changes }))
}

/// The hosted zone and the weighted records: created, repointed at their cluster's load balancer, or removed with
/// their cluster (only at weight 0; one that takes traffic is a note).
async fn record_actions(cloud: &Cloud, env: &Environment, dns: &DnsSettings, existing: &[LbInfo], notes: &mut Vec<String>) -> Result<Vec<Action>> {
    let mut actions = Vec::new();
    let zone = cloud.dns.find_zone(&dns.zone).await?;
    let present = match &zone {
        None => {
            actions.push(Action::CreateHostedZone { zone: dns.zone.clone() });
            Vec::new()
        }
        Some(zone_id) => {
            let set = cloud.dns.records(zone_id, &dns.record).await?;
            if let Some(f) = set.foreign.first() {
                return Err(Refused::ForeignRecord { name: f.name.clone(), record_type: f.record_type.clone(), env: env.name.to_string() }.into());
            }
            set.weighted
        }
    };
    let none_live = present.iter().all(|r| r.weight == 0);
    for (i, c) in env.clusters().iter().enumerate() {
        if !present.iter().any(|r| r.set_identifier == c.name.as_str()) {
            let weight = if i == 0 && none_live { 100 } else { 0 };
            actions.push(Action::CreateLiveRecord { record: dns.record.clone(), cluster: c.name.to_string(), target: c.target.clone(), weight });
        }
    }
    // Records aliasing something else than their cluster's load balancer as it is now (a load balancer
    // created by this plan will have a name of its own, so its record is repointed too).
    let set = RecordSet { weighted: present.clone(), foreign: Vec::new() };
    for m in misdirected(env, &set, existing) {
        actions.push(Action::RepointLiveRecord { record: dns.record.clone(), cluster: m.cluster, target: m.target, from: m.points_to, to: m.should, weight: m.weight });
    }
    for r in present.iter().filter(|r| !env.clusters().iter().any(|c| c.name.as_str() == r.set_identifier)) {
        if r.weight == 0 {
            actions.push(Action::RemoveLiveRecord { record: dns.record.clone(), cluster: r.set_identifier.clone() });
        } else {
            notes.push(format!(
                "{} [{}] belongs to no cluster of the pipeline but takes traffic (weight {}); switch to a cluster of the pipeline, then provision again to remove it",
                dns.record, r.set_identifier, r.weight
            ));
        }
    }
    Ok(actions)
}

/// Provisions `env`: the ledger table first (the lock lives in it), then everything else under the lock, from a
/// plan made again under it.
pub async fn provision(session: &Session, pipeline: &Pipeline, env: &Environment) -> Result<Plan> {
    let cloud = &session.cloud;
    let table = &pipeline.ledger_table;
    let mut done = Vec::new();
    // A plan first, without the lock: what it refuses (a record release does not manage) is refused before
    // anything is created, the table included.
    let first = plan(cloud, pipeline, env).await?;
    if first.actions.iter().any(|a| matches!(a, Action::CreateLedgerTable { .. })) {
        session.progress(&format!("{}/{}: {}", pipeline.app, env.name, Action::CreateLedgerTable { table: table.clone() }));
        infra::create_table(cloud, table).await?;
        done.push(Action::CreateLedgerTable { table: table.clone() });
    }
    infra::index_env(cloud, table, &pipeline.app, &env.name).await?;
    let spec = OpSpec::new(format!("provision of {}", env.name));
    let mut result = runner::run(session, pipeline, env, spec, async |op: &mut Op<'_>| {
        let plan = plan(op.cloud(), pipeline, env).await?;
        let name_servers = apply(op, &plan).await?;
        Ok(Plan { name_servers, ..plan })
    })
    .await?;
    done.append(&mut result.actions);
    result.actions = done;
    Ok(result)
}

/// Carries out a plan made by [`plan`] under the lock. All record changes go in one Route53 batch.
async fn apply(op: &mut Op<'_>, plan: &Plan) -> Result<Vec<String>> {
    if plan.actions.is_empty() {
        return Ok(Vec::new());
    }
    let pipeline = op.pipeline();
    let env = op.env();
    let cloud = op.cloud();
    let label = format!("{}/{}", pipeline.app, env.name);
    let changes: Vec<String> = plan.actions.iter().map(ToString::to_string).collect();
    let record = op.draft(RecordAction::Provision(ProvisionDetails { changes }));
    op.open(record).await?;
    op.guard().await?;
    let mut cache = BTreeMap::new();
    let mut groups = Groups::observe(cloud, pipeline, env, &mut cache).await?;
    let mut name_servers = Vec::new();
    for action in &plan.actions {
        op.progress(&format!("{label}: {action}"));
        if let Some(ns) = apply_infra(cloud, pipeline, env, action, &mut groups, &mut cache).await? {
            name_servers = ns;
        }
    }
    apply_records(op, plan).await?;
    Ok(name_servers)
}

/// The clusters' security groups by name: the VPC each goes in, and the id of each that exists (the existing
/// ones, then those created here).
struct Groups {
    vpcs: BTreeMap<String, String>,
    ids: BTreeMap<String, String>,
}

impl Groups {
    async fn observe(cloud: &Cloud, pipeline: &Pipeline, env: &Environment, cache: &mut BTreeMap<Vec<String>, Network>) -> Result<Groups> {
        let mut ids: BTreeMap<String, String> = BTreeMap::new();
        let mut vpcs: BTreeMap<String, String> = BTreeMap::new();
        for c in env.clusters() {
            let (inst, _) = networks(cloud, c, cache).await?;
            for role in [GroupRole::Lb, GroupRole::Instances] {
                vpcs.insert(group_name(pipeline, c, role), inst.vpc_id.clone());
            }
        }
        for (vpc, names) in vpcs.iter().fold(BTreeMap::<&String, Vec<String>>::new(), |mut m, (n, v)| {
            m.entry(v).or_default().push(n.clone());
            m
        }) {
            for g in cloud.firewall.groups(vpc, &names).await? {
                ids.insert(g.name, g.id);
            }
        }
        Ok(Groups { vpcs, ids })
    }

    /// Planned rules with their group sources resolved to ids.
    fn resolve(&self, rules: &[PlannedRule]) -> Result<Vec<IngressRule>> {
        rules
            .iter()
            .map(|r| {
                let source = match &r.from {
                    From::Cidr(c) => RuleSource::Cidr(c.clone()),
                    From::Group(name) => RuleSource::Group(self.ids.get(name).cloned().unwrap_or_else(|| name.clone())),
                };
                Ok(IngressRule { port: r.port, source })
            })
            .collect()
    }
}

/// Carries out one action that is not a record change (those go in one batch, [`apply_records`]); the name
/// servers of a hosted zone it created.
async fn apply_infra(
    cloud: &Cloud,
    pipeline: &Pipeline,
    env: &Environment,
    action: &Action,
    groups: &mut Groups,
    cache: &mut BTreeMap<Vec<String>, Network>,
) -> Result<Option<Vec<String>>> {
    let ids = &mut groups.ids;
    match action {
        Action::CreateLedgerTable { .. } | Action::CreateLiveRecord { .. } | Action::RemoveLiveRecord { .. } | Action::RepointLiveRecord { .. } => {}
        Action::CreateSecurityGroup { cluster, role, name } => {
            let vpc = groups.vpcs.get(name).cloned().ok_or_else(|| Error::from(Internal::Invariant { what: format!("no vpc for group {name}") }))?;
            let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
            let tags = vec![
                t(tags::APP, pipeline.app.as_str()),
                t(tags::ENV, env.name.as_str()),
                t(tags::CLUSTER, cluster),
                t(tags::MANAGED, "true"),
                t("Name", name),
            ];
            let what = if *role == GroupRole::Lb { "load balancer" } else { "instances" };
            let id = infra::create_group(cloud, &vpc, name, &format!("release: {} {}/{} {what}", pipeline.app, env.name, cluster), &tags).await?;
            ids.insert(name.clone(), id);
        }
        Action::AllowIngress { group, rules } => {
            let id = ids.get(group).cloned().ok_or_else(|| Error::from(Internal::Invariant { what: format!("group {group} has no id") }))?;
            infra::allow(cloud, &id, group, &groups.resolve(rules)?).await?;
        }
        Action::RevokeIngress { group, rules } => {
            let id = ids.get(group).cloned().ok_or_else(|| Error::from(Internal::Invariant { what: format!("group {group} has no id") }))?;
            infra::revoke(cloud, &id, group, &groups.resolve(rules)?).await?;
        }
        Action::CreateLoadBalancer { cluster, target, .. } => {
            let c = cluster_of(env, cluster)?;
            let (_, lb_net) = networks(cloud, c, cache).await?;
            let lb_group = ids.get(&group_name(pipeline, c, GroupRole::Lb)).map(String::as_str);
            let spec = lb_spec(c, lb_group);
            infra::create_lb(cloud, target, &spec, &lb_net, &ownership_tags(pipeline, env, c)).await?;
        }
        Action::ConfigureLoadBalancer { cluster, target, .. } => {
            let c = cluster_of(env, cluster)?;
            let lb_group = ids.get(&group_name(pipeline, c, GroupRole::Lb)).map(String::as_str);
            infra::configure_lb(cloud, target, &lb_spec(c, lb_group)).await?;
        }
        Action::CreateHostedZone { zone } => {
            let z = infra::create_zone(cloud, zone).await?;
            return Ok(Some(z.name_servers));
        }
    }
    Ok(None)
}

/// The plan's record changes, in one Route53 batch, made from the load balancers and records as they are now.
async fn apply_records(op: &mut Op<'_>, plan: &Plan) -> Result<()> {
    let pipeline = op.pipeline();
    let env = op.env();
    let cloud = op.cloud();
    let records: Vec<&Action> = plan
        .actions
        .iter()
        .filter(|a| matches!(a, Action::CreateLiveRecord { .. } | Action::RemoveLiveRecord { .. } | Action::RepointLiveRecord { .. }))
        .collect();
    if records.is_empty() {
        return Ok(());
    }
    let dns = env.dns().ok_or_else(|| Error::from(Internal::Invariant { what: "record actions planned for an environment without dns".into() }))?;
    let zone: ZoneId = cloud.dns.find_zone(&dns.zone).await?.ok_or_else(|| Error::from(NotFound::ZoneVanished { zone: dns.zone.clone() }))?;
    let targets: Vec<LbTarget> = env.clusters().iter().map(|c| c.target.clone()).collect();
    let lbs = cloud.balancer.describe(&targets).await?;
    let present = cloud.dns.records(&zone, &dns.record).await?;
    let mut changes = Vec::new();
    for action in records {
        match action {
            Action::CreateLiveRecord { record, cluster, target, weight } => {
                let lb: &LbInfo = lbs
                    .iter()
                    .find(|lb| &lb.target == target)
                    .ok_or_else(|| Error::from(NotFound::LbOfCluster { target: target.to_string(), cluster: cluster.clone(), env: env.name.to_string() }))?;
                changes.push(RecordChange::Upsert(WeightedAlias {
                    name: record.clone(),
                    set_identifier: cluster.clone(),
                    weight: *weight,
                    target_dns: lb.dns_name.clone(),
                    target_zone_id: lb.hosted_zone_id.clone(),
                    // Weighted: a cluster whose load balancer has no healthy target gets no share.
                    evaluate_target_health: true,
                }));
            }
            Action::RemoveLiveRecord { cluster, .. } => {
                if let Some(r) = present.weighted.iter().find(|r| &r.set_identifier == cluster && r.weight == 0) {
                    changes.push(RecordChange::Delete(r.clone()));
                }
            }
            Action::RepointLiveRecord { cluster, target, .. } => {
                let lb: &LbInfo = lbs
                    .iter()
                    .find(|lb| &lb.target == target)
                    .ok_or_else(|| Error::from(NotFound::LbOfCluster { target: target.to_string(), cluster: cluster.clone(), env: env.name.to_string() }))?;
                // The record as it is now: its weight and EvaluateTargetHealth are kept, only its alias target changes.
                if let Some(r) = present.weighted.iter().find(|r| &r.set_identifier == cluster).filter(|r| !aims_at(r, lb)) {
                    changes.push(RecordChange::Upsert(WeightedAlias { target_dns: lb.dns_name.clone(), target_zone_id: lb.hosted_zone_id.clone(), ..r.clone() }));
                }
            }
            _ => {}
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    op.guard().await?;
    crate::steps::dns::upsert_records(cloud, &zone, &changes, &format!("release provision {} {}", pipeline.app, env.name)).await.context(format!("changing records {}", dns.record))?;
    Ok(())
}

/// The tags everything provision creates carries from its creation on: what makes it managed.
fn ownership_tags(pipeline: &Pipeline, env: &Environment, c: &Cluster) -> Vec<(String, String)> {
    [(tags::APP, pipeline.app.as_str()), (tags::MANAGED, "true"), (tags::ENV, env.name.as_str()), (tags::CLUSTER, c.name.as_str())]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn cluster_of<'e>(env: &'e Environment, name: &str) -> Result<&'e Cluster> {
    env.clusters().iter().find(|c| c.name.as_str() == name).ok_or_else(|| Internal::Invariant { what: format!("planned cluster {name} is not in env {}", env.name) }.into())
}
