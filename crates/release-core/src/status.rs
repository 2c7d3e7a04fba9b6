//! `release status`: per environment and cluster, what runs and whether it takes traffic. It asks AWS a bounded
//! number of times: one describe of images, one of instances, per environment one ledger query and (with dns) one
//! zone lookup and one record listing, and one health query per load balancer; never one call per instance.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::error::Result;
use crate::ledger::Record;
use crate::pipeline::Pipeline;
use crate::ports::{tags, Cloud, HealthState};
use crate::promote::live_weights;

#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    pub cluster: String,
    pub target: String,
    /// `live`, `idle`, or `in-place` (an environment without dns).
    pub role: String,
    pub weight: Option<u8>,
    pub commit: Option<String>,
    /// More than one when a promote is under way or was cut short.
    pub commits: Vec<String>,
    pub ami: Option<String>,
    pub baked: Option<String>,
    pub healthy: usize,
    pub total: usize,
    pub count: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct LastAction {
    pub action: String,
    pub actor: String,
    pub outcome: String,
    pub started: String,
    pub commit: Option<String>,
    pub cluster: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EnvStatus {
    pub env: String,
    pub record: Option<String>,
    pub clusters: Vec<ClusterStatus>,
    pub last: Option<LastAction>,
    /// What is missing for this environment (not provisioned yet, say).
    pub note: Option<String>,
}

pub async fn status(cloud: &Cloud, pipeline: &Pipeline, only: Option<&str>) -> Result<Vec<EnvStatus>> {
    let envs: Vec<_> = match only {
        Some(name) => vec![pipeline.env(name)?],
        None => pipeline.envs.iter().collect(),
    };
    let (images, instances) = images_and_instances(cloud, pipeline).await?;
    let mut out = Vec::new();
    for env in envs {
        let mut note = None;
        let weights = match live_weights(cloud, env).await {
            Ok(w) => w,
            Err(e) if e.kind() == crate::ErrorKind::NotFound => {
                note = Some(e.message().to_owned());
                Default::default()
            }
            Err(e) => return Err(e),
        };
        let records: Vec<Record> = match cloud.ledger.records(&pipeline.ledger_table, &pipeline.app, &env.name, 1).await {
            Ok(r) => r,
            Err(e) if e.kind() == crate::ErrorKind::NotFound => {
                note = Some(e.message().to_owned());
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        let mut clusters = Vec::new();
        for c in &env.clusters {
            let mine: Vec<_> = instances
                .iter()
                .filter(|i| {
                    i.tags.get(tags::ENV).map(String::as_str) == Some(env.name.as_str())
                        && i.tags.get(tags::CLUSTER).map(String::as_str) == Some(c.name.as_str())
                        && i.state != "terminated"
                })
                .collect();
            let health = if mine.is_empty() {
                Vec::new()
            } else {
                match cloud.balancer.health(&c.target).await {
                    Ok(h) => h,
                    Err(e) if e.kind() == crate::ErrorKind::NotFound => {
                        note = Some(e.message().to_owned());
                        Vec::new()
                    }
                    Err(e) => return Err(e),
                }
            };
            let ids: BTreeSet<&str> = mine.iter().map(|i| i.id.as_str()).collect();
            let healthy = health.iter().filter(|h| h.state == HealthState::Healthy && ids.contains(h.id.as_str())).count();
            let commits: BTreeSet<String> = mine.iter().filter_map(|i| i.tags.get(tags::COMMIT).cloned()).collect();
            let amis: BTreeSet<&str> = mine.iter().map(|i| i.ami.as_str()).collect();
            let ami = (amis.len() == 1).then(|| amis.iter().next().map(|a| a.to_string())).flatten();
            let baked = ami.as_ref().and_then(|a| images.iter().find(|i| i.id.as_str() == a).map(|i| i.created.clone()));
            let weight = weights.get(c.name.as_str()).copied();
            let role = match (&env.dns, weight) {
                (None, _) => "in-place",
                (Some(_), Some(w)) if w > 0 => "live",
                _ => "idle",
            };
            clusters.push(ClusterStatus {
                cluster: c.name.to_string(),
                target: c.target.to_string(),
                role: role.into(),
                weight,
                commit: (commits.len() == 1).then(|| commits.iter().next().cloned()).flatten(),
                commits: commits.into_iter().collect(),
                ami,
                baked,
                healthy,
                total: mine.len(),
                count: c.count,
            });
        }
        let last = records.first().map(|r| LastAction {
            action: r.action.clone(),
            actor: r.actor.clone(),
            outcome: r.outcome.as_str().into(),
            started: r.started.to_string(),
            commit: r.commit.clone(),
            cluster: r.cluster.clone(),
        });
        out.push(EnvStatus { env: env.name.to_string(), record: env.dns.as_ref().map(|d| d.record.clone()), clusters, last, note });
    }
    Ok(out)
}

/// The app's images and instances, asked at the same time.
async fn images_and_instances(cloud: &Cloud, pipeline: &Pipeline) -> Result<(Vec<crate::ports::Image>, Vec<crate::ports::Instance>)> {
    let images = cloud.images.app_images(&pipeline.app);
    let instances = cloud.fleet.app_instances(&pipeline.app);
    let (a, b) = futures_join(images, instances).await;
    Ok((a?, b?))
}

/// Both futures at once, without pulling in a futures crate for one join.
async fn futures_join<A: std::future::Future, B: std::future::Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let mut ra = None;
    let mut rb = None;
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    (ra.unwrap(), rb.unwrap())
}
