//! Observe and plan a promote. [`observe`] reads the world (a bounded number of calls, none per instance);
//! [`plan_from`] is a pure function of what was read: which cluster, adopt or clean up what an earlier run left,
//! what to launch and retire, or nothing to do. `--plan` prints the plan and writes nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use super::{per_zone, spread, PlannedLaunch, PromoteOptions};
use crate::model::pipeline::launch::config_hash;
use crate::observe::images::find_ami;
use crate::model::clock::Timestamp;
use crate::model::error::{Error, Input, NotFound, Refused, Result};
use crate::model::hook::HookName;
use crate::model::ids::{short_sha, AmiId, AppName, ClusterName, CommitSha, EnvName, InstanceId, ReleaseId};
use crate::model::ledger::{Action, Outcome, Record};
use crate::model::pipeline::{Cluster, Environment, LbTarget, Pipeline};
use crate::ports::{tags, HealthState, Image, Instance, Network};
use crate::engine::session::Session;
use crate::model::weights::Weights;
use crate::observe::world::{self, release_of, LiveName, Stray};

/// What a promote reads before deciding.
#[derive(Clone, Debug)]
pub struct PromoteWorld {
    /// When it was read.
    pub now: Timestamp,
    /// The commit's AMI.
    pub ami: Image,
    /// The live name (blue/green).
    pub live: Option<LiveName>,
    /// The cluster the promote goes to.
    pub cluster: ClusterName,
    /// The app's instances (every environment).
    pub instances: Vec<Instance>,
    /// The cluster's load balancer members.
    pub members: Vec<InstanceId>,
    /// Members that are not the app's, as EC2 describes them.
    pub others: Vec<Instance>,
    /// Healthy members, asked only when the tags already say the cluster runs this commit (it is the costly read).
    pub healthy: Option<BTreeSet<InstanceId>>,
    /// Where instances go.
    pub network: Network,
    /// The zones of the region that offer the cluster's instance type.
    pub offered: BTreeSet<String>,
    /// The zones the cluster's load balancer is enabled in.
    pub lb_zones: BTreeSet<String>,
    /// The cluster's instance security group (made by provision).
    pub instance_group: String,
    /// The environment's recent ledger records, newest first.
    pub records: Vec<Record>,
    /// An asg cluster's groups, its launch template, and the scaling settings of its serving group that the pipeline
    /// does not declare (none for an instances fleet).
    pub asg: Option<(crate::observe::groups::ClusterGroups, Option<crate::ports::LaunchTemplate>, Vec<String>)>,
}

/// What a promote will do. A plain value: `--plan` prints it, as one flat JSON object (each group below is
/// flattened into it, and `change` writes `kind` and the fields of every kind).
#[derive(Clone, Debug, Serialize)]
pub struct PromotePlan {
    /// What it deploys, over what.
    #[serde(flatten)]
    pub release: Deployed,
    /// Where.
    #[serde(flatten)]
    pub place: Place,
    /// What happens to the cluster's fleet: a deploy, cleanup only, or nothing.
    #[serde(flatten)]
    pub change: Change,
    /// What earlier runs left, removed first whatever the change.
    #[serde(flatten)]
    pub leftovers: Leftovers,
    /// How carefully it goes.
    #[serde(flatten)]
    pub safety: Safety,
    /// An asg cluster's groups: the version and group it makes, the group it replaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asg: Option<super::asg::AsgPlan>,
    /// Why, in words, for `--plan` and the prompt.
    pub summary: String,
}

/// What a promote deploys, and over what.
#[derive(Clone, Debug, Serialize)]
pub struct Deployed {
    /// The commit.
    pub commit: CommitSha,
    /// Its AMI.
    pub ami: AmiId,
    /// The commit's subject line, as the bake tagged it on the AMI.
    pub subject: Option<String>,
    /// The AMI's root device name, for `root_volume`.
    pub root_device: Option<String>,
    /// Hash of the resolved settings.
    pub config_hash: String,
    /// What the cluster runs now.
    pub from_commit: Option<CommitSha>,
}

/// Where a promote goes, as observed.
#[derive(Clone, Debug, Serialize)]
pub struct Place {
    /// The app.
    pub app: AppName,
    /// The environment.
    pub env: EnvName,
    /// The cluster.
    pub cluster: ClusterName,
    /// Its load balancer.
    pub target: LbTarget,
    /// Whether the cluster takes traffic directly (no dns).
    pub in_place: bool,
    /// The cluster's load balancer members (as observed).
    pub members: Vec<InstanceId>,
    /// Where instances go (as observed), without subnets whose zone does not offer the instance type.
    pub network: Network,
    /// Subnets left out, and why (`subnet-… (us-east-1e): t3.micro is not offered there`).
    pub skipped: Vec<String>,
    /// The cluster's instance security group.
    pub instance_group: String,
}

/// What a promote does to the cluster's fleet.
#[derive(Clone, Debug)]
pub enum Change {
    /// Launch, swap, retire.
    Deploy(FleetChange),
    /// The cluster already runs the commit with these settings, all healthy, but an earlier run left instances
    /// or records to clean up.
    Cleanup {
        /// An unfinished run whose fleet already serves: its record is closed as succeeded.
        complete: Option<ReleaseId>,
    },
    /// The cluster already runs the commit with these settings, all healthy.
    Nothing,
}

/// The fleet change of a deploy.
#[derive(Clone, Debug, Default)]
pub struct FleetChange {
    /// An unfinished run of the same commit and settings whose instances this promote adopts.
    pub resume: Option<ReleaseId>,
    /// Instances adopted from `resume`.
    pub adopted: Vec<InstanceId>,
    /// The zone of each adopted instance, so that what is launched evens the zones out.
    pub zones: std::collections::BTreeMap<InstanceId, String>,
    /// New instances per subnet.
    pub launches: Vec<PlannedLaunch>,
    /// The cluster's old instances, retired once the new ones are healthy.
    pub retire: Vec<InstanceId>,
    /// This app's strays in the load balancer, retired with the old instances.
    pub strays: Vec<Stray>,
    /// The cluster's own instances terminated outside release (by hand?) but still in its load balancer,
    /// deregistered with the old instances.
    pub terminated: Vec<InstanceId>,
    /// The cluster was live until this time: the promote waits until then plus `settle` (unless forced).
    pub settle_until: Option<Timestamp>,
}

/// What earlier runs left in the cluster.
#[derive(Clone, Debug, Serialize)]
pub struct Leftovers {
    /// Instances of failed or abandoned releases, removed first.
    pub cleanup: Vec<InstanceId>,
    /// Unfinished records of dead runs that are closed as abandoned.
    pub abandon: Vec<ReleaseId>,
}

/// How carefully a promote goes.
#[derive(Clone, Debug, Serialize)]
pub struct Safety {
    /// Replace this many at a time (each batch watched).
    pub batch: Option<u32>,
    /// --force: no settle wait.
    pub forced: bool,
}

/// What kind of promote a plan is (its `kind` in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanKind {
    /// Launch, swap, retire.
    Deploy,
    /// The cluster already runs the commit with these settings, all healthy.
    Nothing,
    /// As `Nothing`, but an earlier run left instances or records to clean up.
    Cleanup,
}

impl Change {
    /// Its kind.
    pub fn kind(&self) -> PlanKind {
        match self {
            Change::Deploy(_) => PlanKind::Deploy,
            Change::Cleanup { .. } => PlanKind::Cleanup,
            Change::Nothing => PlanKind::Nothing,
        }
    }
}

/// The JSON of a change: its kind, and the fields of every kind (empty or null when not its own), as the plan
/// has always printed them.
impl Serialize for Change {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Flat<'a> {
            kind: PlanKind,
            resume: &'a Option<ReleaseId>,
            complete: &'a Option<ReleaseId>,
            adopted: &'a [InstanceId],
            launches: &'a [PlannedLaunch],
            retire: &'a [InstanceId],
            strays: &'a [Stray],
            terminated: &'a [InstanceId],
            settle_until: &'a Option<Timestamp>,
        }
        let (none, no_id) = (FleetChange::default(), None);
        let (fleet, complete) = match self {
            Change::Deploy(f) => (f, &no_id),
            Change::Cleanup { complete } => (&none, complete),
            Change::Nothing => (&none, &no_id),
        };
        Flat {
            kind: self.kind(),
            resume: &fleet.resume,
            complete,
            adopted: &fleet.adopted,
            launches: &fleet.launches,
            retire: &fleet.retire,
            strays: &fleet.strays,
            terminated: &fleet.terminated,
            settle_until: &fleet.settle_until,
        }
        .serialize(s)
    }
}

impl PromotePlan {
    /// Its kind.
    pub fn kind(&self) -> PlanKind {
        self.change.kind()
    }

    /// The fleet change, when it deploys.
    pub fn fleet(&self) -> Option<&FleetChange> {
        match &self.change {
            Change::Deploy(f) => Some(f),
            _ => None,
        }
    }

    /// Until when it waits for the cluster to settle (a deploy to a cluster live moments ago).
    pub fn settle_until(&self) -> Option<Timestamp> {
        self.fleet().and_then(|f| f.settle_until)
    }
}

/// The cluster a promote goes to: the only one, or the idle one of a blue/green environment.
pub fn choose_cluster<'e>(env: &'e Environment, weights: Option<&Weights>, wanted: Option<&str>) -> Result<&'e Cluster> {
    let Some(weights) = weights.filter(|_| env.is_blue_green()) else {
        let only = &env.clusters()[0];
        if let Some(w) = wanted.filter(|w| *w != only.name.as_str()) {
            return Err(NotFound::OnlyCluster { env: env.name.to_string(), only: only.name.to_string(), wanted: w.to_owned() }.into());
        }
        return Ok(only);
    };
    if let Some(w) = wanted {
        let c = env.cluster(w)?;
        if weights.is_live(&c.name) {
            return Err(Refused::LiveCluster {
                cluster: w.to_owned(),
                percent: weights.percent(&c.name),
                record: env.dns().map_or("", |d| d.record.as_str()).to_owned(),
            }
            .into());
        }
        return Ok(c);
    }
    let idle = env.idle_clusters(weights);
    match idle.as_slice() {
        [one] => Ok(one),
        [] => Err(Refused::NoIdleCluster { env: env.name.to_string(), shares: weights.describe_shares() }.into()),
        several => {
            let clusters: Vec<String> = several.iter().map(|c| c.name.to_string()).collect();
            Err(Input::SeveralIdle { env: env.name.to_string(), clusters }.into())
        }
    }
}

/// Reads what a promote of `commit` to `env` decides on.
pub async fn observe(session: &Session, pipeline: &Pipeline, env: &Environment, commit: &CommitSha, opts: &PromoteOptions) -> Result<PromoteWorld> {
    let cloud = &session.cloud;
    let ami = match session.recall_ami(commit) {
        Some(ami) => ami,
        None => find_ami(&cloud.images.app_images(&pipeline.app).await?, commit).ok_or_else(|| Error::from(NotFound::Ami { commit: commit.to_string() }))?,
    };
    let live = world::live_name(cloud, env).await?;
    if let Some(l) = &live {
        world::require_records(env, l)?;
        // Which cluster is idle is read from the weights; that holds only while each record aliases its own
        // cluster's load balancer. A record taking traffic that points elsewhere (at the idle cluster's, say) would
        // make this promote replace instances that serve.
        let lbs = crate::observe::balancers::env_lbs(cloud, env).await?;
        let wrong: Vec<String> = crate::observe::balancers::misdirected(env, &l.records, &lbs).iter().filter(|m| m.weight > 0).map(|m| m.describe()).collect();
        if !wrong.is_empty() {
            return Err(Refused::MisdirectedLive { records: wrong, env: env.name.to_string() }.into());
        }
    }
    let cluster = choose_cluster(env, live.as_ref().map(|l| &l.weights), opts.cluster.as_deref())?;
    let instances = cloud.fleet.app_instances(&pipeline.app).await?;
    // One read for a classic ELB: its description holds the members and the zones it serves.
    let (members, lb_zones) = cloud.balancer.members_and_zones(&cluster.target).await.map_err(|e| world::lb_missing(env, cluster, e))?;
    let others = world::describe_others(cloud, &members, &instances).await?;
    let records = crate::engine::session::recent_records(cloud, pipeline, &env.name).await?;
    let network = match network_in_use(&instances, &cluster.deploy.subnets) {
        Some(n) => n,
        None => cloud.fleet.network(&cluster.deploy.subnets).await?,
    };
    let offered = cloud.fleet.offered_zones(&cluster.deploy.instance_type).await?;
    let group = crate::model::pipeline::launch::group_name(pipeline, cluster, crate::model::pipeline::launch::GroupRole::Instances);
    let instance_group = match group_in_use(&instances, &network.vpc_id, &group) {
        Some(id) => id,
        None => cloud.firewall.groups(&network.vpc_id, std::slice::from_ref(&group)).await?.into_iter().next().map(|g| g.id).ok_or_else(|| {
            Error::from(NotFound::SecurityGroup { group: group.clone(), cluster: cluster.name.to_string(), env: env.name.to_string() })
                .with_cause(crate::model::error::Cause::Missing)
        })?,
    };
    let config = config_hash(pipeline, env, cluster);
    let current = bare_instances(&instances, env, cluster);
    let asg = match cluster.asg() {
        Some(_) => {
            let all = cloud.groups.app_groups(&pipeline.app).await?;
            let groups = crate::observe::groups::cluster_groups(&all, &pipeline.app, env, cluster);
            let template = cloud.templates.template(&crate::observe::groups::template_name(&pipeline.app, cluster)).await?;
            let undeclared = match groups.serving() {
                Some(g) => {
                    let (policies, scheduled) = tokio::try_join!(cloud.groups.policies(&g.name), cloud.groups.scheduled_actions(&g.name))?;
                    crate::observe::groups::undeclared(cluster, &policies, &scheduled)
                }
                None => Vec::new(),
            };
            Some((groups, template, undeclared))
        }
        None => None,
    };
    // Health is asked only when the tags already say converged: it is the costly read.
    let tags_converged = current.len() >= cluster.count as usize
        && current.iter().filter(|i| runs(i, commit, &config)).count() >= cluster.count as usize;
    let healthy = if tags_converged {
        let health = cloud.balancer.health(&cluster.target).await.map_err(|e| world::lb_missing(env, cluster, e))?;
        Some(health.into_iter().filter(|h| h.state == HealthState::Healthy).map(|h| h.id).collect())
    } else {
        None
    };
    Ok(PromoteWorld {
        now: cloud.clock.now(),
        ami,
        live,
        cluster: cluster.name.clone(),
        instances,
        members,
        others,
        healthy,
        network,
        offered,
        lb_zones,
        instance_group,
        records,
        asg,
    })
}

/// The cluster's instances a promote launches and retires one by one: for an asg cluster, those that are no group's
/// (an instances fleet being moved to a group); the groups' own are the groups' to manage.
fn bare_instances<'i>(instances: &'i [Instance], env: &Environment, cluster: &Cluster) -> Vec<&'i Instance> {
    let mut current = world::cluster_instances(instances, env, cluster);
    if cluster.asg().is_some() {
        current.retain(|i| !i.tags.contains_key(tags::GROUP_NAME));
    }
    current
}

/// The pipeline's `subnets` as live instances of the app in them show them, without a describe: EC2 refuses to
/// delete a subnet that holds an instance, and a subnet's zone and VPC never change. Only subnets the pipeline names
/// (anyone may create or delete a default VPC's default subnets), each holding an instance, all in one VPC (else
/// the describe says what is wrong); sorted by zone, as the port's.
fn network_in_use(instances: &[Instance], subnets: &[String]) -> Option<Network> {
    use crate::ports::InstanceState::{Pending, Running, Stopped, Stopping};
    let mut vpc: Option<&str> = None;
    let mut found = Vec::new();
    for id in subnets.iter().collect::<BTreeSet<_>>() {
        let i = instances
            .iter()
            .find(|i| &i.subnet_id == id && !i.zone.is_empty() && !i.vpc_id.is_empty() && matches!(i.state, Pending | Running | Stopping | Stopped))?;
        if vpc.is_some_and(|v| v != i.vpc_id) {
            return None;
        }
        vpc = Some(&i.vpc_id);
        found.push(crate::ports::Subnet { id: id.clone(), availability_zone: i.zone.clone() });
    }
    found.sort_by(|a, b| a.availability_zone.cmp(&b.availability_zone).then(a.id.cmp(&b.id)));
    Some(Network { vpc_id: vpc?.to_owned(), subnets: found })
}

/// The id of the security group `name` in `vpc` as a live instance there carries it, without a describe: EC2
/// refuses to delete a group that an instance uses and names are unique in a VPC, so it is the one
/// `DescribeSecurityGroups` would find. An instance in another VPC (the cluster moved) carries another group.
fn group_in_use(instances: &[Instance], vpc: &str, name: &str) -> Option<String> {
    use crate::ports::InstanceState::{Pending, Running, Stopped, Stopping};
    instances
        .iter()
        .filter(|i| !vpc.is_empty() && i.vpc_id == vpc && matches!(i.state, Pending | Running | Stopping | Stopped))
        .find_map(|i| i.groups.get(name).cloned())
}

fn runs(i: &Instance, commit: &CommitSha, config: &str) -> bool {
    i.state == crate::ports::InstanceState::Running && i.tags.get(tags::COMMIT).map(String::as_str) == Some(commit.as_str()) && i.tags.get(tags::CONFIG).map(String::as_str) == Some(config)
}

/// When `cluster` last stopped taking traffic, from the switches in `records` (newest first).
pub fn live_until(records: &[Record], cluster: &ClusterName) -> Option<Timestamp> {
    records.iter().filter(|r| r.outcome == Outcome::Succeeded).find_map(|r| {
        let (from, to) = match &r.action {
            Action::Switch(s) => (Some(&s.from), Some(&s.to)),
            Action::Rollback(rb) => (rb.from_weights.as_ref(), rb.to_weights.as_ref()),
            _ => (None, None),
        };
        match (from, to) {
            (Some(f), Some(t)) if f.is_live(cluster) && !t.is_live(cluster) => Some(r.finished.unwrap_or(r.started)),
            _ => None,
        }
    })
}

/// Decides a promote from what [`observe`] read. `action` is the record kind the promote runs as (`promote`, or
/// `rollback` for a rollback that promotes): only an unfinished record of the same kind is adopted.
pub fn plan_from(pipeline: &Pipeline, env: &Environment, commit: &CommitSha, opts: &PromoteOptions, world: &PromoteWorld, action: &str) -> Result<PromotePlan> {
    let cluster = env.cluster(world.cluster.as_str())?;
    let config = config_hash(pipeline, env, cluster);
    let current = bare_instances(&world.instances, env, cluster);
    let strays = world::strays(&pipeline.app, env, cluster, &world.members, &world.instances, &world.others, false);
    refuse_foreign(pipeline, cluster, &strays)?;
    let left = earlier_runs(world, cluster, &current, commit, &config, action);
    let from_commit = left
        .resume
        .and_then(|r| r.promote_details().and_then(|p| p.from.clone()))
        .or_else(|| left.serving.iter().find_map(|i| i.tags.get(tags::COMMIT).and_then(|c| CommitSha::parse(c).ok())));
    let terminated = world::terminated(&pipeline.app, env, cluster, &world.members, &world.others);
    let (mut kind, mut complete, mut resume_kept) = decide(env, cluster, commit, &config, world, &left, &strays, &terminated);
    let asg = match (cluster.asg(), &world.asg) {
        (Some(settings), Some((groups, template, undeclared))) => {
            let bare = left.serving.len() + strays.len() + terminated.len();
            let resumed = left.resume.map(|r| r.release_id.as_str());
            let asg = super::asg::plan(&pipeline.app, cluster, &settings, groups, template.as_ref(), commit, &config, bare, resumed, world.now)?.map(|mut a| {
                a.undeclared = undeclared.clone();
                a
            });
            // The unfinished run of the same commit and settings is resumed: its record adopted, its group (found by
            // its release id, made again idempotently) carried on from where it stopped.
            (kind, complete, resume_kept) = match &asg {
                Some(_) => (PlanKind::Deploy, None, left.resume.map(|r| r.release_id.clone())),
                None if left.cleanup.is_empty() && left.abandon.is_empty() => (PlanKind::Nothing, None, None),
                None => (PlanKind::Cleanup, None, None),
            };
            asg
        }
        _ => None,
    };
    let from_commit = from_commit.or_else(|| {
        world.asg.as_ref().and_then(|(g, _, _)| g.serving()).and_then(|g| g.tags.get(tags::COMMIT)).and_then(|c| CommitSha::parse(c).ok())
    });

    let settle_until = match (&world.live, env.dns()) {
        (Some(_), Some(dns)) => live_until(&world.records, &cluster.name).map(|t| t.add(dns.settle)).filter(|t| *t > world.now),
        _ => None,
    };
    let to_launch = if asg.is_some() { 0 } else { (cluster.count as usize).saturating_sub(left.adopted.len()) as u32 };
    let (network, skipped) = offered_network(world, cluster);
    if network.subnets.is_empty() && kind == PlanKind::Deploy {
        return Err(Refused::NoOfferedSubnet { cluster: cluster.name.to_string(), instance_type: cluster.deploy.instance_type.to_string(), skipped }.into());
    }
    if kind == PlanKind::Deploy {
        // Before anything is launched; the capacity fallback moves instances only among these subnets.
        crate::observe::preflight::zones_served(cluster, &network, &world.lb_zones)?;
    }
    let zones: std::collections::BTreeMap<InstanceId, String> =
        left.adopted_fleet.iter().filter(|i| left.adopted.contains(&i.id)).map(|i| (i.id.clone(), i.zone.clone())).collect();
    let change = match kind {
        PlanKind::Deploy => Change::Deploy(FleetChange {
            resume: resume_kept,
            launches: spread(to_launch, &network.subnets, &per_zone(&left.adopted, &zones)),
            adopted: if asg.is_some() { Vec::new() } else { left.adopted },
            zones,
            retire: left.serving.iter().map(|i| i.id.clone()).collect(),
            strays,
            terminated,
            settle_until,
        }),
        PlanKind::Cleanup => Change::Cleanup { complete },
        PlanKind::Nothing => Change::Nothing,
    };
    let mut plan = PromotePlan {
        release: Deployed {
            commit: commit.clone(),
            ami: world.ami.id.clone(),
            subject: world.ami.tags.get(tags::SUBJECT).cloned(),
            root_device: world.ami.root_device.clone(),
            config_hash: config,
            from_commit,
        },
        place: Place {
            app: pipeline.app.clone(),
            env: env.name.clone(),
            cluster: cluster.name.clone(),
            target: cluster.target.clone(),
            in_place: !env.is_blue_green(),
            members: world.members.clone(),
            network,
            skipped,
            instance_group: world.instance_group.clone(),
        },
        change,
        leftovers: Leftovers { cleanup: left.cleanup, abandon: left.abandon.iter().map(|r| r.release_id.clone()).collect() },
        safety: Safety { batch: opts.batch, forced: opts.force },
        asg,
        summary: String::new(),
    };
    plan.summary = summary(&plan, to_launch);
    Ok(plan)
}

/// The plan in words, for `--plan` and the prompt.
fn summary(plan: &PromotePlan, to_launch: u32) -> String {
    let (env, cluster, commit) = (&plan.place.env, &plan.place.cluster, &plan.release.commit);
    if let (Some(a), Change::Deploy(f)) = (&plan.asg, &plan.change) {
        return format!(
            "promote {} ({}) to {}/{}: launch template {} version {} (expected), group {} of {} instance(s) (min {}, max {}), attached once InService{}{}{}",
            short_sha(commit.as_str()),
            plan.release.ami,
            env,
            cluster,
            a.template,
            a.version,
            a.group,
            a.desired,
            a.min,
            a.max,
            a.replaces.as_ref().map(|g| format!(", then disable group {g} (kept for the rollback window)")).unwrap_or_default(),
            if f.retire.is_empty() { String::new() } else { format!(", then retire {} bare instance(s)", f.retire.len()) },
            if a.delete.is_empty() { String::new() } else { format!("; first delete {} group(s) left by dead runs: {}", a.delete.len(), a.delete.join(", ")) },
        ) + &if a.expired.is_empty() { String::new() } else { format!("; delete {} group(s) past the rollback window: {}", a.expired.len(), a.expired.join(", ")) };
    }
    match &plan.change {
        Change::Nothing => format!("{}/{} already runs {} with these settings, all healthy; nothing to do", env, cluster, short_sha(commit.as_str())),
        Change::Cleanup { complete } => format!(
            "{}/{} already runs {}; only cleanup: {} leftover instance(s), {} unfinished record(s)",
            env,
            cluster,
            short_sha(commit.as_str()),
            plan.leftovers.cleanup.len(),
            plan.leftovers.abandon.len() + usize::from(complete.is_some())
        ),
        Change::Deploy(f) => format!(
            "promote {} ({}) to {}/{}: launch {} instance(s) in {} subnet(s){}, then retire {} old instance(s){}",
            short_sha(commit.as_str()),
            plan.release.ami,
            env,
            cluster,
            to_launch,
            f.launches.len(),
            if f.adopted.is_empty() { String::new() } else { format!(" and adopt {} of unfinished release {}", f.adopted.len(), f.resume.as_ref().map_or("", |r| r.as_str())) },
            f.retire.len(),
            if f.strays.is_empty() { String::new() } else { format!(" and {} stray(s)", f.strays.len()) }
        ) + &if f.terminated.is_empty() { String::new() } else { format!("; deregister {} instance(s) of this cluster terminated by hand", f.terminated.len()) },
    }
}

/// Another app's instances in the cluster's load balancer are not release's to retire: the promote refuses.
fn refuse_foreign(pipeline: &Pipeline, cluster: &Cluster, strays: &[Stray]) -> Result<()> {
    let foreign: Vec<&Stray> = strays.iter().filter(|s| !s.this_app).collect();
    if !foreign.is_empty() {
        let list: Vec<String> = foreign.iter().map(|s| s.describe()).collect();
        return Err(Refused::ForeignStrays { target: cluster.target.to_string(), cluster: cluster.name.to_string(), app: pipeline.app.to_string(), strays: list }.into());
    }
    Ok(())
}

/// What earlier runs left in the cluster, sorted out: the unfinished run this one resumes, those it abandons, and
/// the cluster's instances by whose they are.
struct EarlierRuns<'w> {
    /// The unfinished run of the same kind, commit and settings, whose instances are adopted.
    resume: Option<&'w Record>,
    /// The other unfinished runs, closed as abandoned.
    abandon: Vec<&'w Record>,
    /// Instances of dead runs outside the load balancer, removed first.
    cleanup: Vec<InstanceId>,
    /// The resumed run's instances, stopped ones left out.
    adopted: Vec<InstanceId>,
    /// The resumed run's instances, all of them.
    adopted_fleet: Vec<&'w Instance>,
    /// The fleet that serves (or would, when alive): neither dead nor the resumed run's.
    serving: Vec<&'w Instance>,
}

fn earlier_runs<'w>(world: &'w PromoteWorld, cluster: &Cluster, current: &[&'w Instance], commit: &CommitSha, config: &str, action: &str) -> EarlierRuns<'w> {
    // Unfinished runs that launched into this cluster, and failed ones whose cleanup was cut short.
    let unfinished: Vec<&Record> = world
        .records
        .iter()
        .filter(|r| r.outcome == Outcome::Started && r.promote_details().is_some_and(|p| p.cluster == cluster.name))
        .collect();
    let mut resume: Option<&Record> = None;
    let mut abandon: Vec<&Record> = Vec::new();
    for r in unfinished {
        let p = r.promote_details().expect("filtered");
        if resume.is_none() && r.action_name() == action && p.commit == *commit && p.config_hash == config {
            resume = Some(r);
        } else {
            abandon.push(r);
        }
    }
    let dead: BTreeSet<&str> = world
        .records
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed | Outcome::Interrupted | Outcome::Abandoned | Outcome::LostLock))
        .map(|r| r.release_id.as_str())
        .chain(abandon.iter().map(|r| r.release_id.as_str()))
        .collect();
    // What the load balancer serves is retired only once the new fleet is healthy, whoever launched it: a run
    // that died past its point of no return leaves its fleet as the only one serving.
    let member = |i: &Instance| world.members.contains(&i.id);
    let cleanup: Vec<InstanceId> = current.iter().filter(|i| dead.contains(release_of(i)) && !member(i)).map(|i| i.id.clone()).collect();
    let resume_id = resume.map(|r| r.release_id.as_str());
    let adopted: Vec<InstanceId> =
        current.iter().filter(|i| Some(release_of(i)) == resume_id && i.state != crate::ports::InstanceState::Stopped).map(|i| i.id.clone()).collect();
    let serving: Vec<&Instance> = current
        .iter()
        .copied()
        .filter(|i| (!dead.contains(release_of(i)) || member(i)) && Some(release_of(i)) != resume_id)
        .collect();
    let adopted_fleet: Vec<&Instance> = current.iter().copied().filter(|i| Some(release_of(i)) == resume_id).collect();
    EarlierRuns { resume, abandon, cleanup, adopted, adopted_fleet, serving }
}

/// The kind of promote: `Nothing` or `Cleanup` when the cluster already runs the commit, else `Deploy`; with the
/// unfinished run whose record is only closed (`complete`), or whose instances a deploy adopts (`resume`).
#[allow(clippy::too_many_arguments)]
fn decide(
    env: &Environment,
    cluster: &Cluster,
    commit: &CommitSha,
    config: &str,
    world: &PromoteWorld,
    left: &EarlierRuns<'_>,
    strays: &[Stray],
    terminated: &[InstanceId],
) -> (PlanKind, Option<ReleaseId>, Option<ReleaseId>) {
    let resume = left.resume;
    let healthy = |fleet: &[&Instance]| match &world.healthy {
        Some(h) => fleet.iter().all(|i| h.contains(&i.id)),
        None => false,
    };
    let count = cluster.count as usize;
    // Converged: exactly `count` instances of this commit and settings, one release, all healthy, nothing stray.
    let converged_on = |fleet: &[&Instance]| {
        fleet.len() == count
            && fleet.iter().all(|i| runs(i, commit, config))
            && fleet.iter().map(|i| release_of(i)).collect::<BTreeSet<_>>().len() == 1
            && healthy(fleet)
            && strays.is_empty()
            && terminated.is_empty()
    };
    // Blue/green, the fleet of a run that died is complete only once its before_traffic hook passed: one that died
    // during the hook left a fleet nobody checked, which the re-run must check before it counts as promoted.
    let gate_passed = resume.is_none_or(|r| {
        !env.is_blue_green() || env.hooks.command(HookName::BeforeTraffic).is_none() || r.hooks.iter().any(|h| h.name == HookName::BeforeTraffic && h.passed())
    });
    if resume.is_some() && left.serving.is_empty() && converged_on(&left.adopted_fleet) && gate_passed {
        // The run died after retiring the old fleet: its fleet serves; only its record is left to close.
        (PlanKind::Cleanup, resume.map(|r| r.release_id.clone()), None)
    } else if resume.is_none() && converged_on(&left.serving) {
        let kind = if left.cleanup.is_empty() && left.abandon.is_empty() { PlanKind::Nothing } else { PlanKind::Cleanup };
        (kind, None, None)
    } else {
        (PlanKind::Deploy, None, resume.map(|r| r.release_id.clone()))
    }
}

/// Where instances go: the observed network without the subnets in zones that do not offer the instance type
/// (they would fail at launch, `Unsupported`), and those left out, in words.
fn offered_network(world: &PromoteWorld, cluster: &Cluster) -> (Network, Vec<String>) {
    let mut network = world.network.clone();
    let mut skipped = Vec::new();
    network.subnets.retain(|s| {
        let ok = world.offered.contains(&s.availability_zone);
        if !ok {
            skipped.push(format!("{} ({}): {} is not offered there", s.id, s.availability_zone, cluster.deploy.instance_type));
        }
        ok
    });
    (network, skipped)
}

/// Observes and plans.
pub async fn plan(session: &Session, pipeline: &Pipeline, env: &Environment, commit: &CommitSha, opts: &PromoteOptions) -> Result<PromotePlan> {
    let world = observe(session, pipeline, env, commit, opts).await?;
    // The promotion gates at plan time (`--plan`, the question before a blue/green promote): exit 4 while one is closed.
    let what = format!("promote {} to {}", crate::model::ids::short_sha(commit.as_str()), env.name);
    crate::observe::gates::check(&session.cloud, pipeline, env, commit, &what, opts.override_gates.as_deref(), Some(&world.records)).await?;
    let plan = plan_from(pipeline, env, commit, opts, &world, "promote")?;
    if plan.kind() == PlanKind::Deploy {
        crate::observe::preflight::check_in_place(&session.cloud, env, env.cluster(plan.place.cluster.as_str())?, opts.batch.is_some()).await?;
    }
    Ok(plan)
}

/// How long until the settle wait ends, for messages.
pub fn settle_left(plan: &PromotePlan, now: Timestamp) -> Option<Duration> {
    plan.settle_until().filter(|t| *t > now).map(|t| t.since(now))
}
