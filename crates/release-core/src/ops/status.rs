//! `release status`: per environment and cluster, what runs and whether it takes traffic, strays, who holds the
//! lock and what an operation under way is doing. It asks AWS a bounded number of times: one describe of images
//! and one of instances per app; per environment one ledger query, one lock read and (with dns) one zone lookup
//! and one record listing; one health query per cluster; one describe of load balancers per kind (where the live
//! names' records should point); never one call per instance.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::model::clock::Timestamp;
use crate::model::error::{Cause, Result};
use crate::model::ids::{short_sha, EnvName, InstanceId};
use crate::model::ledger::{LockInfo, Outcome, Progress, Record};
use crate::model::pipeline::{Cluster, Environment, LbTarget, Pipeline};
use crate::ports::{tags, HealthState, Image, Instance, LbInfo};
use crate::observe::balancers::Misdirected;
use crate::observe::world::{self, LiveName, Stray};

/// One cluster as status shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    /// Its name.
    pub cluster: String,
    /// Its load balancer.
    pub target: String,
    /// `live`, `idle`, or `in-place` (an environment without dns).
    pub role: String,
    /// Its share of the live name's traffic, in percent (weight / sum of weights).
    pub share: Option<u8>,
    /// The raw Route53 weight.
    pub weight: Option<u8>,
    /// The commit it runs, when exactly one.
    pub commit: Option<String>,
    /// The commit's subject line, when the AMI carries it.
    pub subject: Option<String>,
    /// Every commit its instances run (more than one while a promote is under way or was cut short).
    pub commits: Vec<String>,
    /// The AMI, when exactly one.
    pub ami: Option<String>,
    /// When it was baked.
    pub baked: Option<String>,
    /// Healthy instances of the cluster in its load balancer.
    pub healthy: usize,
    /// The cluster's instances (not terminated).
    pub total: usize,
    /// How many it should run.
    pub count: u32,
    /// Instances in its load balancer that are not its current ones.
    pub strays: Vec<Stray>,
    /// Its own instances terminated outside `release` (by hand?) and still in its load balancer.
    pub terminated: Vec<InstanceId>,
    /// What is wrong with its weighted record (it points elsewhere than its load balancer), and the fix; or that
    /// it ran a release and has no instances now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// An asg cluster's groups: the serving one first, then the disabled ones (newest first), then strays.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupStatus>,
    /// The commit the ledger last put on it, when it serves and runs nothing now (its instances terminated outside
    /// `release`, which a target group forgets at once): capacity lost, not a cluster never deployed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emptied: Option<String>,
}

/// One Auto Scaling group of an asg cluster.
#[derive(Clone, Debug, Serialize)]
pub struct GroupStatus {
    /// Its name.
    pub name: String,
    /// `serving`, `disabled` or `stray` (neither: left by a run that died).
    pub state: String,
    /// The commit it runs.
    pub commit: Option<String>,
    /// DesiredCapacity.
    pub desired: u32,
    /// MinSize.
    pub min: u32,
    /// MaxSize.
    pub max: u32,
    /// Instances InService.
    pub in_service: usize,
    /// Of those, healthy in the cluster's load balancer.
    pub healthy: usize,
    /// Disabled: since when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<Timestamp>,
    /// Disabled: how much of its rollback window is left (zero: past it, deleted by the next promote).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_opt_secs")]
    pub window_left: Option<std::time::Duration>,
}

fn ser_opt_secs<S: serde::Serializer>(d: &Option<std::time::Duration>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match d {
        Some(d) => crate::model::clock::ser_duration(d, s),
        None => s.serialize_none(),
    }
}

/// The environment's lock as status shows it.
#[derive(Clone, Debug, Serialize)]
pub struct LockStatus {
    /// The lock item.
    #[serde(flatten)]
    pub lock: LockInfo,
    /// Its lease ran out: its holder stopped renewing it.
    pub stale: bool,
}

/// An operation under way (its record is `started`).
#[derive(Clone, Debug, Serialize)]
pub struct OperationStatus {
    /// `promote`, `switch`, ...
    pub action: String,
    /// Its release.
    pub release_id: String,
    /// Who runs it.
    pub actor: String,
    /// Since when.
    pub started: Timestamp,
    /// Its cluster.
    pub cluster: Option<String>,
    /// Its commit.
    pub commit: Option<String>,
    /// What it does now.
    pub progress: Option<Progress>,
    /// Whether a live process holds the environment's lock for it (false: its lease ran out, or its process is
    /// provably gone and no hook it started still runs; a re-run finishes it). Judged as `release unlock` does.
    pub alive: bool,
    /// What was judged of the lock's holder (`holder pid N on HOST is gone`, `lease renewed Ns ago, ...`); none
    /// when no lock is held for it.
    pub holder: Option<String>,
}

/// The newest record, in short.
#[derive(Clone, Debug, Serialize)]
pub struct LastAction {
    /// `promote`, ...
    pub action: String,
    /// Who.
    pub actor: String,
    /// How it ended.
    pub outcome: crate::model::ledger::Outcome,
    /// When.
    pub started: String,
    /// Its commit.
    pub commit: Option<String>,
    /// Its cluster.
    pub cluster: Option<String>,
}

/// One environment.
#[derive(Clone, Debug, Serialize)]
pub struct EnvStatus {
    /// Its name.
    pub env: String,
    /// `in-place` or `blue-green`.
    pub kind: String,
    /// The live name.
    pub record: Option<String>,
    /// Its clusters.
    pub clusters: Vec<ClusterStatus>,
    /// The lock, when held.
    pub lock: Option<LockStatus>,
    /// An operation under way.
    pub operation: Option<OperationStatus>,
    /// Commands waiting for the lock (`--wait`), in the order they will run.
    pub queue: Vec<crate::model::ledger::Ticket>,
    /// The newest record.
    pub last: Option<LastAction>,
    /// What is missing for this environment (not provisioned yet, say).
    pub note: Option<String>,
    /// A part of a cluster's load balancer that is gone (deleted by hand, as the environment has a history).
    #[serde(skip)]
    pub lb_gone: Option<String>,
}

/// Status of `only` (an environment) or of every environment.
pub async fn status(session: &crate::engine::session::Session, pipeline: &Pipeline, only: Option<&str>) -> Result<Vec<EnvStatus>> {
    let cloud = &session.cloud;
    let envs: Vec<_> = match only {
        Some(name) => vec![pipeline.env(name)?],
        None => pipeline.envs.iter().collect(),
    };
    let (images, instances) = tokio::try_join!(cloud.images.app_images(&pipeline.app), cloud.fleet.app_instances(&pipeline.app))?;
    // Where the live names' records should point: one describe for every environment with dns. Target groups
    // are described whatever the environment: their health reads fine without the ALB in front of them.
    let targets: Vec<LbTarget> = envs
        .iter()
        .flat_map(|e| e.clusters().iter().filter(move |c| e.dns().is_some() || c.target_is_alb()).map(|c| c.target.clone()))
        .collect();
    let lbs = if targets.is_empty() { Vec::new() } else { cloud.balancer.describe(&targets).await? };
    // Asg clusters: the app's groups in one DescribeAutoScalingGroups, whatever the number of environments.
    let groups = if envs.iter().any(|e| e.clusters().iter().any(|c| c.asg().is_some())) { cloud.groups.app_groups(&pipeline.app).await? } else { Vec::new() };
    let mut out = Vec::new();
    for env in envs {
        out.push(env_status(session, pipeline, &env.name, &images, &instances, &targets, &lbs, &groups).await?);
    }
    Ok(out)
}

/// How many of the newest records status reads while the lock is held: the holder's record is older than what
/// the queue wrote since it started (each waiter that left writes one record), and rarely more than a few back.
const HOLDER_WINDOW: u32 = 25;

/// The operation under way: the open record of the lock's holder (the lock names its run), else the newest
/// record when it is still open (its process died and the lock is gone, or someone else took it since).
fn running_record<'r>(records: &'r [Record], lock: Option<&LockInfo>) -> Option<&'r Record> {
    let open = |r: &&Record| r.outcome == Outcome::Started;
    lock.and_then(|l| records.iter().filter(open).find(|r| r.holder == l.release_id)).or_else(|| records.first().filter(open))
}

fn missing<T: Default>(r: Result<T>, note: &mut Option<String>) -> Result<T> {
    match r {
        Ok(v) => Ok(v),
        Err(e) if e.is(Cause::Missing) || e.kind() == crate::ErrorKind::NotFound => {
            note.get_or_insert_with(|| e.message().to_owned());
            Ok(T::default())
        }
        Err(e) => Err(e),
    }
}

async fn env_status(
    session: &crate::engine::session::Session,
    pipeline: &Pipeline,
    name: &EnvName,
    images: &[Image],
    instances: &[Instance],
    described: &[LbTarget],
    lbs: &[LbInfo],
    groups: &[crate::ports::Group],
) -> Result<EnvStatus> {
    let cloud = &session.cloud;
    let env = pipeline.env(name.as_str())?;
    let mut note = None;
    let live = missing(world::live_name(cloud, env).await.map(|l| l.map(Box::new)), &mut note)?;
    let lock = missing(cloud.lock.holder(&pipeline.ledger_table, &pipeline.app, &env.name).await, &mut note)?;
    // Records written while the lock is held (a cancelled or superseded queue ticket, a rollout request) are dated
    // after the holder's and would hide it: with a lock, read a window deep enough to reach the holder's record.
    let window = if lock.is_some() { HOLDER_WINDOW } else { 1 };
    let records: Vec<Record> = missing(cloud.ledger.records(&pipeline.ledger_table, &pipeline.app, &env.name, Some(window)).await, &mut note)?;
    let now = cloud.clock.now();
    let running = running_record(&records, lock.as_ref());
    let busy = lock.as_ref().is_some_and(|l| !l.is_stale(now)) || running.is_some();
    // A queue forms only behind a held lock: read it then, and status costs nothing more otherwise.
    let queue = if lock.is_some() {
        missing(cloud.queue.tickets(&pipeline.ledger_table, &pipeline.app, &env.name).await, &mut note)?.into_iter().filter(|t| t.is_waiting(now)).collect()
    } else {
        Vec::new()
    };
    let wrong = live.as_ref().map(|l| crate::observe::balancers::misdirected(env, &l.records, lbs)).unwrap_or_default();
    let view = EnvView { pipeline, env, images, instances, described, lbs, live: live.as_deref(), wrong: &wrong, busy, groups };
    let mut clusters = Vec::new();
    let mut lb_gone: Option<String> = None;
    for c in env.clusters() {
        let (cluster, gone) = view.cluster(session, c).await?;
        if let Some(g) = &gone {
            note.get_or_insert_with(|| g.clone());
            lb_gone.get_or_insert_with(|| g.clone());
        }
        clusters.push(cluster);
    }
    // A serving cluster with no instance and none known terminated: never deployed, or its fleet terminated by
    // hand behind a target group (which deregisters terminated targets at once, so nothing is left to name).
    // Only the ledger tells which; it is read deeper only on this path, so a healthy status costs nothing more.
    if clusters.iter().any(|c| c.serves() && c.total == 0 && c.terminated.is_empty() && c.count > 0) {
        let deeper;
        let recent = if records.len() as u32 >= HOLDER_WINDOW {
            &records
        } else {
            deeper = missing(cloud.ledger.records(&pipeline.ledger_table, &pipeline.app, &env.name, Some(HOLDER_WINDOW)).await, &mut note)?;
            &deeper
        };
        for c in clusters.iter_mut().filter(|c| c.serves() && c.total == 0 && c.terminated.is_empty()) {
            c.emptied = last_put_on(recent, &c.cluster).map(|sha| sha.to_string());
            if let Some(sha) = &c.emptied {
                c.note.get_or_insert_with(|| format!("ran {} and has no instances now (terminated outside release?)", short_sha(sha)));
            }
        }
    }
    let last = records.first().map(|r| LastAction {
        action: r.action_name().into(),
        actor: r.actor.clone(),
        outcome: r.outcome,
        started: r.started.to_string(),
        commit: r.commit().map(ToString::to_string),
        cluster: r.cluster().map(ToString::to_string),
    });
    Ok(EnvStatus {
        env: env.name.to_string(),
        kind: if env.is_blue_green() { "blue-green" } else { "in-place" }.into(),
        record: env.dns().map(|d| d.record.clone()),
        clusters,
        operation: running.map(|r| operation(session, r, lock.as_ref(), now)),
        lock: lock.map(|l| LockStatus { stale: l.is_stale(now), lock: l }),
        // An environment never provisioned has no record yet: its missing load balancers are only a note.
        lb_gone: lb_gone.filter(|_| !records.is_empty()),
        queue,
        last,
        note,
    })
}

/// What each cluster of an environment is judged from.
struct EnvView<'a> {
    pipeline: &'a Pipeline,
    env: &'a Environment,
    images: &'a [Image],
    instances: &'a [Instance],
    /// The load balancers asked about, and those that answered.
    described: &'a [LbTarget],
    lbs: &'a [LbInfo],
    live: Option<&'a LiveName>,
    /// The live name's records that point elsewhere than their cluster's load balancer.
    wrong: &'a [Misdirected],
    /// Whether an operation is under way (two releases in a load balancer are then no strays).
    busy: bool,
    /// The app's Auto Scaling groups.
    groups: &'a [crate::ports::Group],
}

impl EnvView<'_> {
    /// Cluster `c` as status shows it, and why its load balancer is gone, if it is.
    async fn cluster(&self, session: &crate::engine::session::Session, c: &Cluster) -> Result<(ClusterStatus, Option<String>)> {
        let (cloud, pipeline, env, instances, live) = (&session.cloud, self.pipeline, self.env, self.instances, self.live);
        let mut mine = world::cluster_instances(instances, env, c);
        let cluster_groups = c.asg().map(|_| crate::observe::groups::cluster_groups(self.groups, &pipeline.app, env, c));
        if let Some(g) = &cluster_groups {
            // Disabled groups keep their instances for a rollback: what the cluster runs is its serving group's
            // (and bare instances of an instances fleet not moved yet).
            let serving = g.serving().map(|g| g.name.as_str());
            mine.retain(|i| i.tags.get(tags::GROUP_NAME).is_none_or(|n| Some(n.as_str()) == serving));
        }
        let mut gone = None;
        let health = missing(cloud.balancer.health(&c.target).await.map_err(|e| world::lb_missing(env, c, e)), &mut gone)?;
        if gone.is_none() && self.described.contains(&c.target) && !self.lbs.iter().any(|l| l.target == c.target) {
            // Described but left out: name the part that is gone (the ALB alone, say), not the whole target.
            gone = cloud.balancer.missing_part(&c.target).await?.map(|part| world::part_missing(env, c, &part).message().to_owned());
        }
        let members: Vec<_> = health.iter().map(|h| h.id.clone()).collect();
        let others = world::describe_others(cloud, &members, instances).await?;
        // While an operation is under way two releases are in the load balancer on purpose.
        let strays = world::strays(&pipeline.app, env, c, &members, instances, &others, !self.busy);
        let terminated = world::terminated(&pipeline.app, env, c, &members, &others);
        let ids: BTreeSet<&str> = mine.iter().map(|i| i.id.as_str()).collect();
        // Through a deleted load balancer nothing reaches them, whatever the target group still says (AWS marks
        // such targets `unused`; the emulator keeps them healthy).
        let healthy = if gone.is_some() { 0 } else { health.iter().filter(|h| h.state == HealthState::Healthy && ids.contains(h.id.as_str())).count() };
        let commits: BTreeSet<String> = mine.iter().filter_map(|i| i.tags.get(tags::COMMIT).cloned()).collect();
        let amis: BTreeSet<&str> = mine.iter().map(|i| i.ami.as_str()).collect();
        let ami = (amis.len() == 1).then(|| amis.iter().next().map(|a| a.to_string())).flatten();
        let image = ami.as_ref().and_then(|a| self.images.iter().find(|i| i.id.as_str() == a));
        let (role, share, weight) = match live {
            None => ("in-place", None, None),
            Some(l) => {
                let w = l.weights.weight(&c.name);
                let role = if l.weights.is_live(&c.name) { "live" } else { "idle" };
                (role, Some(l.weights.percent(&c.name)), l.weights.has(&c.name).then_some(w))
            }
        };
        let status = ClusterStatus {
            cluster: c.name.to_string(),
            target: c.target.to_string(),
            role: role.into(),
            share,
            weight,
            commit: (commits.len() == 1).then(|| commits.iter().next().cloned()).flatten(),
            subject: image.and_then(|i| i.tags.get(tags::SUBJECT).cloned()),
            commits: commits.into_iter().collect(),
            ami,
            baked: image.map(|i| i.created.clone()),
            healthy,
            total: mine.len(),
            count: c.count,
            strays,
            terminated,
            note: gone.clone().or_else(|| self.record_note(c)),
            groups: cluster_groups.map(|g| group_statuses(&g, c, &health, cloud.clock.now())).unwrap_or_default(),
            emptied: None,
        };
        Ok((status, gone))
    }

    /// What is wrong with the cluster's weighted record: it points elsewhere, or it is gone.
    fn record_note(&self, c: &Cluster) -> Option<String> {
        let env = self.env;
        self.wrong
            .iter()
            .find(|m| m.cluster == c.name.as_str())
            .map(|m| format!("{}; switch refuses to send it traffic until `release provision --env {}` repoints it", m.describe(), env.name))
            .or_else(|| {
                // A weighted record deleted by hand: the cluster looks idle, but no switch can give it traffic.
                self.live.filter(|l| !l.weights.has(&c.name))?;
                let record = env.dns().map_or("", |d| d.record.as_str());
                Some(format!("{record} has no weighted record for {}; switch refuses it until `release provision --env {}` adds it", c.name, env.name))
            })
    }
}

/// An asg cluster's groups as status shows them.
fn group_statuses(g: &crate::observe::groups::ClusterGroups, c: &Cluster, health: &[crate::ports::TargetHealth], now: Timestamp) -> Vec<GroupStatus> {
    let window = c.asg().map(|a| a.rollback_window).unwrap_or_default();
    let one = |grp: &crate::ports::Group, state: &str, since: Option<Timestamp>| {
        let ids: BTreeSet<&str> = grp.instances.iter().filter(|i| i.lifecycle == crate::ports::Lifecycle::InService).map(|i| i.id.as_str()).collect();
        GroupStatus {
            name: grp.name.clone(),
            state: state.into(),
            commit: grp.tags.get(tags::COMMIT).cloned(),
            desired: grp.capacity.desired,
            min: grp.capacity.min,
            max: grp.capacity.max,
            in_service: ids.len(),
            healthy: health.iter().filter(|h| h.state == HealthState::Healthy && ids.contains(h.id.as_str())).count(),
            disabled_at: since,
            window_left: since.map(|t| window.saturating_sub(now.since(t))),
        }
    };
    let mut out: Vec<GroupStatus> = g.attached.iter().map(|x| one(x, "serving", None)).collect();
    out.extend(g.disabled.iter().map(|d| one(&d.group, "disabled", Some(d.since))));
    out.extend(g.strays.iter().map(|x| one(x, "stray", None)));
    out
}

/// The operation under way, as its record tells and its lock's holder is judged.
fn operation(session: &crate::engine::session::Session, r: &Record, lock: Option<&LockInfo>, now: Timestamp) -> OperationStatus {
    let judged = lock.filter(|l| l.release_id == r.holder).map(|l| crate::engine::lock::judge_holder(session, l, Some(r), now));
    OperationStatus {
        action: r.action_name().into(),
        release_id: r.release_id.to_string(),
        actor: r.actor.clone(),
        started: r.started,
        cluster: r.cluster().map(ToString::to_string),
        commit: r.commit().map(ToString::to_string),
        progress: r.progress.clone(),
        // The same judgement as `release unlock`: a holder whose process is gone is dead, unless a hook it
        // started still runs.
        alive: judged.as_ref().is_some_and(crate::engine::lock::Holder::is_live),
        holder: judged.as_ref().map(|j| j.why().to_owned()),
    }
}

/// The commit the newest successful promote or switch of `records` put on `cluster` (newest first).
fn last_put_on<'r>(records: &'r [Record], cluster: &str) -> Option<&'r crate::model::ids::CommitSha> {
    records.iter().filter(|r| r.outcome == Outcome::Succeeded && r.cluster().is_some_and(|c| c.as_str() == cluster)).find_map(|r| r.commit())
}

impl ClusterStatus {
    /// Whether it serves: live (a share of the traffic), or an in-place environment's cluster.
    pub fn serves(&self) -> bool {
        self.role != "idle"
    }

    /// Whether it serves with fewer instances than its count, after having run some: capacity was lost (an
    /// instance terminated by hand, say, or the whole fleet). A cluster never deployed is not.
    pub fn is_short(&self) -> bool {
        self.serves() && (self.total > 0 || !self.terminated.is_empty() || self.emptied.is_some()) && (self.total as u32) < self.count
    }

    /// Whether it serves, runs instances, and not one is healthy in its load balancer (say, a load balancer made
    /// again, its instances never registered in it): nothing answers its traffic.
    pub fn serves_nothing(&self) -> bool {
        self.serves() && self.total > 0 && self.healthy == 0
    }
}

impl EnvStatus {
    /// Why `status` should not exit 0: a part of a load balancer deleted (not found), or a serving cluster below
    /// its count (refused: the environment is not as the pipeline wants it).
    pub fn problem(&self) -> Option<crate::Error> {
        if let Some(gone) = &self.lb_gone {
            return Some(crate::model::error::NotFound::LbGone { what: gone.clone() }.into());
        }
        // While a live run works on the environment, its clusters' sizes are in motion.
        if self.operation.as_ref().is_some_and(|o| o.alive) {
            return None;
        }
        let short = self.clusters.iter().find(|c| c.is_short()).or_else(|| self.clusters.iter().find(|c| c.serves_nothing()))?;
        let commit = short.commit.as_deref().or(short.emptied.as_deref());
        Some(
            crate::model::error::Refused::ShortCluster {
                cluster: short.cluster.clone(),
                env: self.env.clone(),
                role: short.role.clone(),
                total: short.total,
                healthy: short.healthy,
                count: short.count,
                terminated: short.terminated.iter().map(world::describe_terminated).collect(),
                commit: commit.map(short_sha).map(str::to_owned),
            }
            .into(),
        )
    }
}

/// `promote in progress: healthy 37/50 (release r…, by alice, 1m12s)` for text output.
pub fn describe_operation(op: &OperationStatus, now: Timestamp) -> String {
    let what = op.progress.as_ref().and_then(|p| p.waiting_for.clone().or_else(|| Some(p.phase.to_string()))).unwrap_or_else(|| "starting".into());
    let target = match (&op.commit, &op.cluster) {
        (Some(c), Some(cl)) => format!(" of {} to {cl}", short_sha(c)),
        (None, Some(cl)) => format!(" to {cl}"),
        _ => String::new(),
    };
    let secs = now.since(op.started).as_secs();
    let dead = match (&op.holder, op.alive) {
        (_, false) => "; its process is gone: run the same command again to finish it".to_owned(),
        // Its process died but a hook it started still runs: say so, it is why nobody may take over yet.
        (Some(why), true) if why.starts_with("holder pid") => format!("; {why}"),
        _ => String::new(),
    };
    format!("{}{target} in progress: {what} (release {}, by {}, {}m{:02}s){dead}", op.action, op.release_id, op.actor, secs / 60, secs % 60)
}
