//! An asg cluster's Auto Scaling groups, sorted out from one DescribeAutoScalingGroups of the app: the group that
//! serves (attached to the cluster's load balancer), the disabled ones (out of it, kept for a rollback inside the
//! window, tagged with when), and strays (neither: left by a run that died before attaching or deleting its group).

use std::time::Duration;

use serde::Serialize;

use crate::model::clock::Timestamp;
use crate::model::error::Result;
use crate::model::ids::AppName;
use crate::model::pipeline::{Cluster, Environment, Pipeline};
use crate::ports::{tags, Cloud, Group, Instance, Lifecycle};

/// A group disabled by a promote.
#[derive(Clone, Debug, Serialize)]
pub struct Disabled {
    /// The group.
    pub group: Group,
    /// When it was disabled (its `release:disabled-at` tag).
    pub since: Timestamp,
}

/// An asg cluster's groups.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClusterGroups {
    /// Groups attached to the cluster's load balancer, newest first: the first is the one that serves; more than one
    /// only after a run died between attaching its group and disabling the old one.
    pub attached: Vec<Group>,
    /// Disabled groups, most recently disabled first.
    pub disabled: Vec<Disabled>,
    /// Groups neither attached nor disabled.
    pub strays: Vec<Group>,
}

impl ClusterGroups {
    /// The group that serves.
    pub fn serving(&self) -> Option<&Group> {
        self.attached.first()
    }

    /// Disabled groups whose rollback window is over at `now`.
    pub fn expired(&self, window: Duration, now: Timestamp) -> Vec<&Disabled> {
        self.disabled.iter().filter(|d| now.since(d.since) >= window).collect()
    }
}

/// The group's instances that count: InService ones.
pub fn in_service(g: &Group) -> usize {
    g.instances.iter().filter(|i| i.lifecycle == Lifecycle::InService).count()
}

/// When a promote disabled `g`, if it did.
pub fn disabled_at(g: &Group) -> Option<Timestamp> {
    g.tags.get(tags::DISABLED_AT).and_then(|v| v.parse::<i64>().ok()).map(Timestamp::from_millis)
}

/// Whether `g` belongs to that cluster of the app (by its tags).
pub fn of_cluster(g: &Group, app: &AppName, env: &Environment, cluster: &Cluster) -> bool {
    let tag = |k: &str| g.tags.get(k).map(String::as_str);
    tag(tags::APP) == Some(app.as_str()) && tag(tags::ENV) == Some(env.name.as_str()) && tag(tags::CLUSTER) == Some(cluster.name.as_str())
}

/// Sorts the app's groups (`all`, one describe) into the cluster's.
pub fn cluster_groups(all: &[Group], app: &AppName, env: &Environment, cluster: &Cluster) -> ClusterGroups {
    let mut out = ClusterGroups::default();
    for g in all.iter().filter(|g| of_cluster(g, app, env, cluster)) {
        // A group being deleted is gone already for every decision.
        if g.status.as_deref().is_some_and(|s| s.starts_with("Delete")) {
            continue;
        }
        if g.load_balancers.contains(&cluster.target) {
            out.attached.push(g.clone());
        } else if let Some(since) = disabled_at(g) {
            out.disabled.push(Disabled { group: g.clone(), since });
        } else {
            out.strays.push(g.clone());
        }
    }
    out.attached.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
    out.disabled.sort_by(|a, b| b.since.cmp(&a.since).then(b.group.name.cmp(&a.group.name)));
    out
}

/// The name of the group a release makes from template version `version`: `<app>-<cluster>-v<NNN>`, unique and
/// derivable from the ledger (the record keeps the version).
pub fn group_name(app: &AppName, cluster: &Cluster, version: u32) -> String {
    format!("{}-{}-v{:03}", app, cluster.name, version)
}

/// The launch template of an asg cluster: `<app>-<cluster>`.
pub fn template_name(app: &AppName, cluster: &Cluster) -> String {
    format!("{}-{}", app, cluster.name)
}

/// The app's `instances` without those of groups attached to no load balancer (disabled for a rollback, or left by a
/// dead run): they run on purpose and are no cluster's fleet for a switch, a rollback or a hook. One
/// DescribeAutoScalingGroups, made only when the pipeline has an asg cluster.
pub async fn serving_instances(cloud: &Cloud, pipeline: &Pipeline, instances: Vec<Instance>) -> Result<Vec<Instance>> {
    if !pipeline.envs.iter().any(|e| e.clusters().iter().any(|c| c.asg().is_some())) {
        return Ok(instances);
    }
    let groups = cloud.groups.app_groups(&pipeline.app).await?;
    let resting: std::collections::BTreeSet<&str> = groups.iter().filter(|g| g.load_balancers.is_empty()).map(|g| g.name.as_str()).collect();
    Ok(instances.into_iter().filter(|i| i.tags.get(tags::GROUP_NAME).is_none_or(|n| !resting.contains(n.as_str()))).collect())
}

/// The serving group's scaling policies and scheduled actions that `cluster`'s pipeline settings do not make (only
/// the `scaling.cpu` target-tracking policy, `CPU_POLICY`, is theirs), described.
pub fn undeclared(cluster: &Cluster, policies: &[crate::ports::ScalingPolicy], scheduled: &[crate::ports::ScheduledAction]) -> Vec<String> {
    let cpu = cluster.asg().and_then(|a| a.cpu);
    let mut out: Vec<String> = policies
        .iter()
        .filter(|p| !(p.name == crate::ports::CPU_POLICY && cpu.is_some() && p.cpu_target == cpu))
        .map(|p| format!("policy {} ({}{})", p.name, p.kind, p.cpu_target.map(|t| format!(", cpu {t}%")).unwrap_or_default()))
        .collect();
    out.extend(scheduled.iter().map(|a| format!("scheduled action {}{}", a.name, a.recurrence.as_ref().map(|r| format!(" ({r})")).unwrap_or_default())));
    out
}
