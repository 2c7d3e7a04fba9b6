//! A promote to an asg cluster (issue 22): red/black on one load balancer. The release gets a numbered launch
//! template version and a group of its own, created unattached with min pinned to desired and AlarmNotification
//! suspended; once its instances are InService and `before_traffic` passed it is attached and waited healthy; then
//! the serving group is disabled (out of the load balancer, instances and healing kept for a rollback inside the
//! window) and the new group's min and alarms are restored. A failure before the old group leaves deletes the new
//! one the careful way: the environment serves what it served.
//!
//! [`plan`] decides (a plain value inside the [`PromotePlan`](super::PromotePlan)); [`deploy`] carries it out,
//! composing `steps::groups`.

use serde::Serialize;

use super::plan::{FleetChange, PromotePlan};
use super::{PromoteOptions, PromoteReport};
use crate::engine::runner::Op;
use crate::model::error::{Deploy, ErrorKind, Refused, Result};
use crate::model::ids::{short_sha, AppName, CommitSha, InstanceId};
use crate::model::ledger::{GroupsDetail, PromoteDetails};
use crate::model::phase::{Checkpoint, Lap};
use crate::model::pipeline::launch::user_data;
use crate::model::pipeline::{AsgSettings, Cluster};
use crate::observe::groups::{group_name, ClusterGroups};
use crate::ports::{tags, Capacity, GroupSpec, LaunchTemplate, TemplateSpec};
use crate::steps::groups;

/// What an asg promote makes and replaces (`--plan` prints it under `asg`).
#[derive(Clone, Debug, Serialize)]
pub struct AsgPlan {
    /// The launch template (`<app>-<cluster>`).
    pub template: String,
    /// Whether it exists (a first promote creates it).
    pub template_exists: bool,
    /// The version number the release's version is expected to get (the next after the newest seen).
    pub version: u32,
    /// The group it creates (`<app>-<cluster>-v<NNN>`, from that number).
    pub group: String,
    /// The new group's desired capacity: the serving group's current desired, else `count`.
    pub desired: u32,
    /// Its min once it serves (`scaling.min`).
    pub min: u32,
    /// Its max (`scaling.max`).
    pub max: u32,
    /// The CPU target of its target-tracking policy.
    pub cpu: Option<u8>,
    /// The group that serves now, disabled once the new one is healthy.
    pub replaces: Option<String>,
    /// Other groups still attached (a run died between attaching and disabling), disabled with it.
    pub also_disable: Vec<String>,
    /// Groups neither attached nor disabled (left by dead runs), deleted before anything is made.
    pub delete: Vec<String>,
    /// Groups disabled longer than `rollback_window`, deleted once the new group serves.
    pub expired: Vec<String>,
    /// Scaling policies and scheduled actions of the serving group that the pipeline does not declare: the new
    /// group does not get them (the pipeline owns scaling), and they are said, not silently dropped.
    pub undeclared: Vec<String>,
}

/// Whether a group runs `commit` with the settings hashed as `config` (its tags).
fn runs(g: &crate::ports::Group, commit: &CommitSha, config: &str) -> bool {
    g.tags.get(tags::COMMIT).map(String::as_str) == Some(commit.as_str()) && g.tags.get(tags::CONFIG).map(String::as_str) == Some(config)
}

/// Decides an asg promote from the cluster's groups and its template. `bare`: the cluster's instances that are not a
/// group's (an instances fleet the promote moves to a group); none and a serving group already running the commit
/// with these settings, done switching (its alarms resumed), means nothing to do (`None`). `resumed`: the unfinished
/// release of the same commit and settings this promote resumes: its group, wherever a crash left it, is this
/// promote's own (the same version, by its client token, and so the same group), never the one it replaces.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    app: &AppName,
    cluster: &Cluster,
    settings: &AsgSettings,
    groups: &ClusterGroups,
    template: Option<&LaunchTemplate>,
    commit: &CommitSha,
    config: &str,
    bare: usize,
    resumed: Option<&str>,
    now: crate::model::clock::Timestamp,
) -> Result<Option<AsgPlan>> {
    let mine = |g: &crate::ports::Group| resumed.is_some_and(|r| g.tags.get(tags::RELEASE_ID).map(String::as_str) == Some(r));
    let own = groups.attached.iter().chain(groups.disabled.iter().map(|d| &d.group)).chain(groups.strays.iter()).find(|g| mine(g));
    let attached: Vec<&crate::ports::Group> = groups.attached.iter().filter(|g| !mine(g)).collect();
    let strays: Vec<&crate::ports::Group> = groups.strays.iter().filter(|g| !mine(g)).collect();
    let serving = attached.first().copied();
    let settled = |g: &crate::ports::Group| !g.suspended.contains(&crate::ports::Process::AlarmNotification);
    if resumed.is_none() && bare == 0 && attached.len() == 1 && strays.is_empty() && serving.is_some_and(|g| runs(g, commit, config) && settled(g)) {
        return Ok(None);
    }
    let desired = match (own, serving) {
        (Some(g), _) => g.capacity.desired,
        (None, Some(g)) if g.capacity.desired > settings.max => {
            return Err(Refused::DesiredOverMax { cluster: cluster.name.to_string(), group: g.name.clone(), desired: g.capacity.desired, max: settings.max }.into());
        }
        (None, Some(g)) => g.capacity.desired.max(settings.min),
        (None, None) => cluster.count,
    };
    let version = match own.and_then(|g| g.template.as_ref()) {
        Some(t) => t.version.0,
        None => template.map_or(2, |t| t.latest_version.0 + 1),
    };
    Ok(Some(AsgPlan {
        template: crate::observe::groups::template_name(app, cluster),
        template_exists: template.is_some(),
        version,
        group: own.map_or_else(|| group_name(app, cluster, version), |g| g.name.clone()),
        desired,
        min: settings.min.min(desired),
        max: settings.max,
        cpu: settings.cpu,
        replaces: serving.map(|g| g.name.clone()),
        also_disable: attached.iter().skip(1).map(|g| g.name.clone()).collect(),
        delete: strays.iter().map(|g| g.name.clone()).collect(),
        expired: groups.expired(settings.rollback_window, now).into_iter().filter(|d| !mine(&d.group)).map(|d| d.group.name.clone()).collect(),
        undeclared: Vec::new(),
    }))
}

/// The version's launch data: what an instance of the release is launched with (as a bare instance would be).
fn template_spec(op: &Op<'_>, plan: &PromotePlan, cluster: &Cluster, release: &str, opts: &PromoteOptions) -> TemplateSpec {
    let pipeline = op.pipeline();
    let env = op.env();
    let release_id = crate::model::ids::ReleaseId::from_string(release.to_owned());
    let mut security_groups = vec![plan.place.instance_group.clone()];
    security_groups.extend(cluster.deploy.security_groups.iter().cloned());
    TemplateSpec {
        ami: plan.release.ami.clone(),
        instance_type: cluster.deploy.instance_type.to_string(),
        user_data: user_data(&pipeline.app, &env.name, &env.vars, cluster, &plan.release.commit, &release_id, &opts.region),
        metadata_tokens: cluster.deploy.metadata_tokens,
        instance_profile: cluster.deploy.instance_profile.clone(),
        key_name: cluster.deploy.key_name.clone(),
        security_groups,
        root_volume: match (&cluster.deploy.root_volume, &plan.release.root_device) {
            (Some(v), Some(dev)) => Some((dev.clone(), v.clone())),
            _ => None,
        },
        tags: group_tags(op, plan, cluster, release),
        description: format!("release {release} of {}", short_sha(plan.release.commit.as_str())),
    }
}

/// The tags of the release's group (propagated to its instances at launch) and of its version's instances.
fn group_tags(op: &Op<'_>, plan: &PromotePlan, cluster: &Cluster, release: &str) -> Vec<(String, String)> {
    let app = &op.pipeline().app;
    vec![
        (tags::APP.to_owned(), app.to_string()),
        (tags::ENV.to_owned(), op.env().name.to_string()),
        (tags::CLUSTER.to_owned(), cluster.name.to_string()),
        (tags::COMMIT.to_owned(), plan.release.commit.to_string()),
        (tags::RELEASE_ID.to_owned(), release.to_owned()),
        (tags::CONFIG.to_owned(), plan.release.config_hash.clone()),
        ("Name".to_owned(), format!("{}-{}-{}", app, cluster.name, short_sha(plan.release.commit.as_str()))),
    ]
}

/// Carries out an asg promote (the record is open): the group comes in, the serving group (and any bare instances of
/// the cluster, `fleet.retire`) go out. On an error before the old group leaves, the new group is deleted.
pub async fn deploy(op: &mut Op<'_>, plan: &PromotePlan, asg: &AsgPlan, fleet: &FleetChange, d: &mut PromoteDetails, rep: &mut PromoteReport, opts: &PromoteOptions) -> Result<()> {
    let cluster = op.env().cluster(plan.place.cluster.as_str())?.clone();
    let settings = cluster.asg().ok_or_else(|| crate::model::error::Internal::Invariant { what: format!("cluster {} runs no asg fleet", cluster.name) })?;
    let target = plan.place.target.clone();
    let drain = cluster.deploy.drain;
    let release = op.record().map(|r| r.release_id.to_string()).unwrap_or_default();
    for stray in &asg.delete {
        op.guard().await?;
        op.progress(&format!("deleting group {stray}, left by an unfinished or failed release"));
        groups::retire(op, stray, &target, drain).await?;
    }
    if !asg.undeclared.is_empty() {
        op.progress(&format!(
            "group {} has scaling settings the pipeline does not declare, not carried to the new group: {}",
            asg.replaces.as_deref().unwrap_or("-"),
            asg.undeclared.join("; ")
        ));
    }
    op.check()?;
    let spec = template_spec(op, plan, &cluster, &release, opts);
    let template_tags = vec![(tags::APP.to_owned(), op.pipeline().app.to_string()), (tags::MANAGED.to_owned(), "true".to_owned())];
    let version = groups::new_version(op, &asg.template, &template_tags, &spec, &release).await?;
    let name = group_name(&op.pipeline().app, &cluster, version.version.0);
    // A resumed release keeps what its first run recorded of the group it replaced (disabled by it, perhaps).
    let before = d.groups.take().unwrap_or_default();
    d.groups = Some(GroupsDetail {
        template: version.id.to_string(),
        version: version.version.0,
        group: name.clone(),
        desired: asg.desired,
        replaced: asg.replaces.clone().or(before.replaced),
        replaced_min: before.replaced_min,
    });
    op.record_mut()?.set_promote_details(d);
    op.save().await?;
    op.progress(&format!("launch template {} version {} for {}", asg.template, version.version, short_sha(plan.release.commit.as_str())));
    let gspec = GroupSpec {
        name: name.clone(),
        template: version,
        subnets: plan.place.network.subnets.iter().map(|s| s.id.clone()).collect(),
        capacity: Capacity { min: asg.desired, desired: asg.desired, max: settings.max },
        // The API defaults the grace to 0: an instance would be judged by the load balancer before it booted.
        health_check_grace: cluster.deploy.health_timeout,
        instance_warmup: cluster.deploy.health.least_time(),
        tags: spec.tags.clone(),
        load_balancers: Vec::new(),
        lifecycle_hooks: Vec::new(),
    };
    let mut polls = 0;
    let up = bring_up(op, plan, &gspec, settings.cpu, &target, &cluster, d, &mut polls, opts).await;
    rep.polls = polls;
    if let Err(e) = up {
        if e.kind() == ErrorKind::Crash {
            return Err(e);
        }
        return Err(remove_new(op, plan, &name, &target, drain, e).await);
    }
    // A deploy never shrinks a fleet that autoscaling grew meanwhile: the old group's desired, read again.
    let mut desired = asg.desired;
    if let Some(old) = &asg.replaces {
        if let Some(g) = groups::read(op, old).await? {
            if g.capacity.desired > desired && g.capacity.desired <= settings.max {
                op.progress(&format!("group {old} grew to {} meanwhile: raising {name} to match", g.capacity.desired));
                desired = g.capacity.desired;
                let raised = async {
                    groups::raise(op, &name, desired).await?;
                    groups::attach_and_wait_healthy(op, &name, &target, desired, cluster.deploy.health_timeout, &mut polls).await
                }
                .await;
                rep.polls = polls;
                if let Err(e) = raised {
                    if e.kind() == ErrorKind::Crash {
                        return Err(e);
                    }
                    return Err(remove_new(op, plan, &name, &target, drain, e).await);
                }
                if let Some(g) = d.groups.as_mut() {
                    g.desired = desired;
                }
            }
        }
    }
    op.guard().await?;
    // In place the old group leaves a load balancer that serves: past here the new group stays. Blue/green the idle
    // cluster's previous group is only set aside until `before_traffic` passed against the new group alone.
    if plan.place.in_place {
        op.point_of_no_return("the new group is healthy and serving and the old one is leaving");
    }
    let all = op.cloud().groups.app_groups(&op.pipeline().app).await?;
    let mut set_aside = Vec::new();
    for old in asg.replaces.iter().chain(asg.also_disable.iter()) {
        if let Some(g) = all.iter().find(|g| &g.name == old) {
            let min = groups::disable(op, g, &target, drain).await?;
            set_aside.push((g.clone(), min));
            if asg.replaces.as_ref() == Some(old) {
                if let Some(gd) = d.groups.as_mut() {
                    gd.replaced_min = Some(min);
                }
            }
        }
    }
    op.record_mut()?.set_promote_details(d);
    op.step(Checkpoint::DeregisteredOld)?;
    if !plan.place.in_place {
        let ids = d.new_instances.clone();
        if let Err(e) = crate::ops::promote::hooks::before_traffic_idle(op, plan, opts, &ids).await {
            if e.kind() == ErrorKind::Crash {
                return Err(e);
            }
            let e = remove_new(op, plan, &name, &target, drain, e).await;
            // The idle cluster gets its previous release back, for a switch back to find.
            let mut polls = 0;
            for (g, min) in &set_aside {
                let Some(g) = groups::read(op, &g.name).await.ok().flatten() else { continue };
                if let Err(back) = groups::enable(op, &g, &target, g.capacity.desired, cluster.deploy.health_timeout, &mut polls).await {
                    op.progress(&format!("enabling group {} again failed: {back}", g.name));
                    continue;
                }
                let _ = groups::restore(op, &g.name, *min).await;
            }
            return Err(e);
        }
        op.guard().await?;
        op.point_of_no_return("the new group passed its checks in the idle cluster");
    }
    retire_bare(op, plan, fleet, d, drain).await?;
    groups::restore(op, &name, asg.min.min(desired)).await?;
    // Past their window a rollback no longer enables them: deleted the careful way.
    for old in &asg.expired {
        op.guard().await?;
        op.progress(&format!("deleting group {old}: disabled longer than rollback_window"));
        groups::retire(op, old, &target, drain).await?;
    }
    d.new_instances = groups::read(op, &name).await?.map(|g| g.instances.into_iter().map(|i| i.id).collect()).unwrap_or_default();
    op.record_mut()?.set_promote_details(d);
    op.lap(Lap::Retire);
    Ok(())
}

/// Creates the group, waits for it InService, runs `before_traffic`, attaches it and waits healthy.
#[allow(clippy::too_many_arguments)]
async fn bring_up(op: &mut Op<'_>, plan: &PromotePlan, gspec: &GroupSpec, cpu: Option<u8>, target: &crate::model::pipeline::LbTarget, cluster: &Cluster, d: &mut PromoteDetails, polls: &mut u32, opts: &PromoteOptions) -> Result<()> {
    let desired = gspec.capacity.desired;
    groups::create_group(op, gspec, cpu).await?;
    op.progress(&format!("created group {} ({desired} instance(s), unattached)", gspec.name));
    op.lap(Lap::Launch);
    op.step(Checkpoint::Launched)?;
    let ids = groups::wait_in_service(op, &gspec.name, desired, cluster.deploy.health_timeout, polls).await?;
    d.new_instances = ids.clone();
    op.record_mut()?.set_promote_details(d);
    op.lap(Lap::WaitRunning);
    op.step(Checkpoint::Running)?;
    crate::ops::promote::hooks::before_registering(op, plan, opts, &ids).await?;
    op.check()?;
    let healthy = groups::attach_and_wait_healthy(op, &gspec.name, target, desired, cluster.deploy.health_timeout, polls).await?;
    d.new_instances = healthy;
    op.record_mut()?.set_promote_details(d);
    op.lap(Lap::WaitHealthy);
    op.step(Checkpoint::Healthy)
}

/// The cluster's bare instances (an instances fleet moving to a group), retired as an instance promote retires its
/// old fleet: out of the load balancer, drained, terminated.
async fn retire_bare(op: &mut Op<'_>, plan: &PromotePlan, fleet: &FleetChange, d: &mut PromoteDetails, drain: std::time::Duration) -> Result<()> {
    let mut going: Vec<InstanceId> = fleet.retire.clone();
    going.extend(fleet.strays.iter().map(|s| s.id.clone()));
    going.extend(fleet.terminated.iter().cloned());
    if going.is_empty() {
        return Ok(());
    }
    let registered: Vec<InstanceId> = going.iter().filter(|i| plan.place.members.contains(*i)).cloned().collect();
    if !registered.is_empty() {
        crate::steps::fleet::deregister(op, &plan.place.target, &registered).await?;
        if !drain.is_zero() {
            op.progress(&format!("draining {} instance(s) for {}", registered.len(), crate::model::clock::format_duration(drain)));
            op.pause(drain).await?;
        }
    }
    op.guard().await?;
    crate::steps::fleet::terminate(op, &going).await?;
    d.retired_instances.extend(fleet.retire.iter().cloned());
    d.strays_retired.extend(fleet.strays.iter().map(|s| s.id.clone()));
    d.terminated_by_hand.extend(fleet.terminated.iter().cloned());
    op.progress(&format!("terminated {} instance(s) of the cluster's previous fleet", going.len()));
    op.step(Checkpoint::TerminatedOld)
}

/// After a failure before the old group left: deletes the new group (detached, emptied, deleted), and retells the
/// error with what happened, keeping its kind.
async fn remove_new(op: &mut Op<'_>, plan: &PromotePlan, name: &str, target: &crate::model::pipeline::LbTarget, drain: std::time::Duration, e: crate::model::error::Error) -> crate::model::error::Error {
    let (kind, why) = super::apply::failure_of(&e);
    let (commit, cluster) = (short_sha(plan.release.commit.as_str()).to_owned(), plan.place.cluster.to_string());
    let e = match super::apply::claim_cleanup(op, e, &why, kind).await {
        Ok(e) => e,
        Err(told) => return told,
    };
    op.progress(&format!("rolling back: deleting group {name}"));
    match groups::retire(op, name, target, drain).await {
        Ok(()) => e.retold(Deploy::GroupRemoved { commit, cluster, why, kind, group: name.to_owned() }).with_rolled_back(true),
        Err(c) => e.retold(Deploy::GroupRemoveFailed { commit, cluster, why, kind, group: name.to_owned(), error: c.to_string() }).with_rolled_back(false),
    }
}
