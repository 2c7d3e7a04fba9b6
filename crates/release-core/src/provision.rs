//! `release provision`: observe what an environment needs in the cloud, plan what is missing or stale, apply it
//! under the environment's lock. Re-running is always safe: every action is decided from a fresh observation, and
//! a second run plans nothing.

use serde::Serialize;

use crate::error::{Error, Result, ResultExt};
use crate::ledger::{Action as RecordAction, ProvisionDetails};
use crate::pipeline::{Cluster, Environment, LbTarget, Pipeline};
use crate::ports::{Cloud, LbInfo, LbSpec, RecordChange, WeightedAlias, ZoneId};
use crate::runner::{self, Op, OpSpec, Session};

/// One change provision makes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// The ledger table (and locks).
    CreateLedgerTable {
        /// Its name.
        table: String,
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
            Action::RemoveLiveRecord { record, cluster } => {
                write!(f, "remove weighted alias {record} [{cluster}] (cluster {cluster} is no longer in the pipeline; weight 0)")
            }
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

/// Observes the cloud and returns what `env` still needs.
pub async fn plan(cloud: &Cloud, pipeline: &Pipeline, env: &Environment) -> Result<Plan> {
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    if !cloud.ledger.table_exists(&pipeline.ledger_table).await? {
        actions.push(Action::CreateLedgerTable { table: pipeline.ledger_table.clone() });
    }
    let targets: Vec<LbTarget> = env.clusters().iter().map(|c| c.target.clone()).collect();
    let existing = cloud.balancer.describe(&targets).await?;
    for c in env.clusters() {
        if !existing.iter().any(|lb| lb.target == c.target) {
            actions.push(Action::CreateLoadBalancer {
                cluster: c.name.to_string(),
                target: c.target.clone(),
                port: c.deploy.port,
                health_path: c.deploy.health_path.clone(),
            });
        }
    }
    if let Some(dns) = env.dns() {
        let zone = cloud.dns.find_zone(&dns.zone).await?;
        let present = match &zone {
            None => {
                actions.push(Action::CreateHostedZone { zone: dns.zone.clone() });
                Vec::new()
            }
            Some(zone_id) => {
                let set = cloud.dns.records(zone_id, &dns.record).await?;
                if let Some(f) = set.foreign.first() {
                    return Err(Error::refused(format!(
                        "{} already exists as a {} record that release does not manage; delete it or choose another `record` for env {}",
                        f.name, f.record_type, env.name
                    )));
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
    }
    Ok(Plan { app: pipeline.app.to_string(), env: env.name.to_string(), actions, notes, name_servers: Vec::new() })
}

/// Provisions `env`: the ledger table first (the lock lives in it), then everything else under the lock, from a
/// plan made again under it.
pub async fn provision(session: &Session, pipeline: &Pipeline, env: &Environment) -> Result<Plan> {
    let cloud = &session.cloud;
    let first = plan(cloud, pipeline, env).await?;
    let mut done = Vec::new();
    if first.actions.iter().any(|a| matches!(a, Action::CreateLedgerTable { .. })) {
        let table = &pipeline.ledger_table;
        session.progress(&format!("{}/{}: {}", pipeline.app, env.name, Action::CreateLedgerTable { table: table.clone() }));
        cloud.ledger.create_table(table).await.context(format!("creating table {table}"))?;
        done.push(Action::CreateLedgerTable { table: table.clone() });
    }
    cloud.ledger.index_env(&pipeline.ledger_table, &pipeline.app, &env.name).await?;
    let spec = OpSpec { doing: format!("provision of {}", env.name) };
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
    let label = format!("{}/{}", pipeline.app, env.name);
    let changes: Vec<String> = plan.actions.iter().map(ToString::to_string).collect();
    let record = op.draft(RecordAction::Provision(ProvisionDetails { changes }));
    op.open(record).await?;
    let mut name_servers = Vec::new();
    for action in &plan.actions {
        op.progress(&format!("{label}: {action}"));
        match action {
            Action::CreateLedgerTable { .. } => {}
            Action::CreateLoadBalancer { cluster, target, .. } => {
                let c = cluster_of(env, cluster)?;
                let network = op.cloud().fleet.network(&c.deploy.subnets).await?;
                let spec = LbSpec { port: c.deploy.port, health_path: c.deploy.health_path.clone(), security_groups: c.deploy.security_groups.clone() };
                op.cloud().balancer.create(target, &spec, &network).await.context(format!("creating {target}"))?;
            }
            Action::CreateHostedZone { zone } => {
                let z = op.cloud().dns.create_zone(zone).await.context(format!("creating hosted zone {zone}"))?;
                name_servers = z.name_servers;
            }
            Action::CreateLiveRecord { .. } | Action::RemoveLiveRecord { .. } => {}
        }
    }
    let records: Vec<&Action> = plan.actions.iter().filter(|a| matches!(a, Action::CreateLiveRecord { .. } | Action::RemoveLiveRecord { .. })).collect();
    if records.is_empty() {
        return Ok(name_servers);
    }
    let dns = env.dns().ok_or_else(|| Error::internal("record actions planned for an environment without dns"))?;
    let zone: ZoneId = op
        .cloud()
        .dns
        .find_zone(&dns.zone)
        .await?
        .ok_or_else(|| Error::not_found(format!("hosted zone {} vanished while provisioning", dns.zone)))?;
    let targets: Vec<LbTarget> = env.clusters().iter().map(|c| c.target.clone()).collect();
    let lbs = op.cloud().balancer.describe(&targets).await?;
    let present = op.cloud().dns.records(&zone, &dns.record).await?;
    let mut changes = Vec::new();
    for action in records {
        match action {
            Action::CreateLiveRecord { record, cluster, target, weight } => {
                let lb: &LbInfo = lbs.iter().find(|lb| &lb.target == target).ok_or_else(|| {
                    Error::not_found(format!("{target} for cluster {cluster} does not exist; run `release provision --env {}`", env.name))
                })?;
                changes.push(RecordChange::Upsert(WeightedAlias {
                    name: record.clone(),
                    set_identifier: cluster.clone(),
                    weight: *weight,
                    target_dns: lb.dns_name.clone(),
                    target_zone_id: lb.hosted_zone_id.clone(),
                }));
            }
            Action::RemoveLiveRecord { cluster, .. } => {
                if let Some(r) = present.weighted.iter().find(|r| &r.set_identifier == cluster && r.weight == 0) {
                    changes.push(RecordChange::Delete(r.clone()));
                }
            }
            _ => {}
        }
    }
    if changes.is_empty() {
        return Ok(name_servers);
    }
    op.guard().await?;
    op.cloud()
        .dns
        .submit(&zone, &changes, &format!("release provision {} {}", pipeline.app, env.name))
        .await
        .context(format!("changing records {}", dns.record))?;
    Ok(name_servers)
}

fn cluster_of<'e>(env: &'e Environment, name: &str) -> Result<&'e Cluster> {
    env.clusters()
        .iter()
        .find(|c| c.name.as_str() == name)
        .ok_or_else(|| Error::internal(format!("planned cluster {name} is not in env {}", env.name)))
}
