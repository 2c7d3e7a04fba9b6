//! `release provision`: observe what an environment needs in the cloud, list what is missing, create it.
//! Re-running is always safe: every action is decided from a fresh observation, and a second run plans nothing.

use serde::Serialize;

use crate::error::{Error, ErrorKind, Result, ResultExt};
use crate::pipeline::{Cluster, Environment, LbTarget, Pipeline};
use crate::ports::{Cloud, LbInfo, LbSpec, RecordChange, WeightedAlias, ZoneId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    CreateLedgerTable { table: String },
    CreateLoadBalancer { cluster: String, target: LbTarget, port: u16, health_path: String },
    CreateHostedZone { zone: String },
    /// One weighted alias per cluster; the first cluster takes all the traffic when the name is new.
    CreateLiveRecord { record: String, cluster: String, target: LbTarget, weight: u8 },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::CreateLedgerTable { table } => write!(f, "create DynamoDB table {table} (ledger and locks)"),
            Action::CreateLoadBalancer { cluster, target: LbTarget::ClassicElb(n), port, health_path } => {
                write!(f, "create classic ELB {n} for cluster {cluster} (HTTP 80 -> {port}, health {health_path})")
            }
            Action::CreateLoadBalancer { cluster, target: LbTarget::TargetGroup(n), port, health_path } => {
                write!(f, "create target group {n} with an ALB and listener for cluster {cluster} (HTTP 80 -> {port}, health {health_path})")
            }
            Action::CreateHostedZone { zone } => write!(f, "create Route53 hosted zone {zone}"),
            Action::CreateLiveRecord { record, cluster, target, weight } => {
                write!(f, "create weighted alias {record} [{cluster}] -> {target}, weight {weight}")
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub app: String,
    pub env: String,
    pub actions: Vec<Action>,
}

/// Observes the cloud and returns what `env` still needs.
pub async fn plan(cloud: &Cloud, pipeline: &Pipeline, env: &Environment) -> Result<Plan> {
    let mut actions = Vec::new();
    if !cloud.ledger.table_exists(&pipeline.ledger_table).await? {
        actions.push(Action::CreateLedgerTable { table: pipeline.ledger_table.clone() });
    }
    let targets: Vec<LbTarget> = env.clusters.iter().map(|c| c.target.clone()).collect();
    let existing = cloud.balancer.describe(&targets).await?;
    for c in &env.clusters {
        if !existing.iter().any(|lb| lb.target == c.target) {
            actions.push(Action::CreateLoadBalancer {
                cluster: c.name.to_string(),
                target: c.target.clone(),
                port: c.deploy.port,
                health_path: c.deploy.health_path.clone(),
            });
        }
    }
    if let Some(dns) = &env.dns {
        let zone = cloud.dns.find_zone(&dns.zone).await?;
        let present = match &zone {
            None => {
                actions.push(Action::CreateHostedZone { zone: dns.zone.clone() });
                Vec::new()
            }
            Some(zone_id) => {
                let set = cloud.dns.records(zone_id, &dns.record).await?;
                if let Some(f) = set.foreign.first() {
                    return Err(Error::new(
                        ErrorKind::Refused,
                        format!(
                            "{} already exists as a {} record that release does not manage; delete it or choose another `record` for env {}",
                            f.name, f.record_type, env.name
                        ),
                    ));
                }
                set.weighted
            }
        };
        let none_live = present.iter().all(|r| r.weight == 0);
        for (i, c) in env.clusters.iter().enumerate() {
            if !present.iter().any(|r| r.set_identifier == c.name.as_str()) {
                let weight = if i == 0 && none_live { 100 } else { 0 };
                actions.push(Action::CreateLiveRecord {
                    record: dns.record.clone(),
                    cluster: c.name.to_string(),
                    target: c.target.clone(),
                    weight,
                });
            }
        }
    }
    Ok(Plan { app: pipeline.app.to_string(), env: env.name.to_string(), actions })
}

/// Carries out a plan made by [`plan`]. All record changes go in one Route53 batch.
pub async fn apply(cloud: &Cloud, pipeline: &Pipeline, env: &Environment, plan: &Plan) -> Result<()> {
    for action in &plan.actions {
        match action {
            Action::CreateLedgerTable { table } => {
                cloud.ledger.create_table(table).await.context(format!("creating table {table}"))?;
            }
            Action::CreateLoadBalancer { cluster, target, .. } => {
                let c = cluster_of(env, cluster)?;
                let network = cloud.fleet.network(&c.deploy.subnets).await?;
                let spec = LbSpec {
                    port: c.deploy.port,
                    health_path: c.deploy.health_path.clone(),
                    security_groups: c.deploy.security_groups.clone(),
                };
                cloud.balancer.create(target, &spec, &network).await.context(format!("creating {target}"))?;
            }
            Action::CreateHostedZone { zone } => {
                cloud.dns.create_zone(zone).await.context(format!("creating hosted zone {zone}"))?;
            }
            Action::CreateLiveRecord { .. } => {}
        }
    }
    let records: Vec<&Action> = plan.actions.iter().filter(|a| matches!(a, Action::CreateLiveRecord { .. })).collect();
    if records.is_empty() {
        return Ok(());
    }
    let dns = env.dns.as_ref().ok_or_else(|| Error::internal("record actions planned for an environment without dns"))?;
    let zone: ZoneId = cloud
        .dns
        .find_zone(&dns.zone)
        .await?
        .ok_or_else(|| Error::not_found(format!("hosted zone {} vanished while provisioning", dns.zone)))?;
    let targets: Vec<LbTarget> = env.clusters.iter().map(|c| c.target.clone()).collect();
    let lbs = cloud.balancer.describe(&targets).await?;
    let mut changes = Vec::new();
    for action in records {
        if let Action::CreateLiveRecord { record, cluster, target, weight } = action {
            let lb: &LbInfo = lbs
                .iter()
                .find(|lb| &lb.target == target)
                .ok_or_else(|| Error::not_found(format!("{target} for cluster {cluster} does not exist; run `release provision --env {}`", env.name)))?;
            changes.push(RecordChange::Upsert(WeightedAlias {
                name: record.clone(),
                set_identifier: cluster.clone(),
                weight: *weight,
                target_dns: lb.dns_name.clone(),
                target_zone_id: lb.hosted_zone_id.clone(),
            }));
        }
    }
    cloud
        .dns
        .apply(&zone, &changes, &format!("release provision {} {}", pipeline.app, env.name))
        .await
        .context(format!("creating records {}", dns.record))
}

fn cluster_of<'e>(env: &'e Environment, name: &str) -> Result<&'e Cluster> {
    env.clusters
        .iter()
        .find(|c| c.name.as_str() == name)
        .ok_or_else(|| Error::internal(format!("planned cluster {name} is not in env {}", env.name)))
}
