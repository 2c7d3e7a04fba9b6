//! The in-memory cloud's launch templates and Auto Scaling groups: what the emulator (moto 5.2.5) does not model.
//! Group instances are instances of the memory cloud (tagged, in zones, seen by DescribeInstances) and take part in
//! its load balancer health model once attached. On simulated time, each call first brings every group up to now
//! ([`settle`]): Pending instances go InService after `launch_delay` (and are registered with the attached load
//! balancers unless AddToLoadBalancer is suspended); past the health check grace, an instance that is not running,
//! or that its load balancer never finds healthy (`sick`), is Unhealthy and is replaced unless HealthCheck,
//! ReplaceUnhealthy or Terminate is suspended; the group launches (unless Launch is suspended) or terminates
//! (unless Terminate is) toward its desired capacity; a terminating instance leaves its load balancers (draining
//! for the deregistration delay) before it is terminated; launches fail as scaling activities with AWS's reason
//! (a zone out of capacity, an AMI that does not exist, a scripted failure) and are retried every 10 s.
//! Capacity outside min <= desired <= max is a ValidationError, a group with instances cannot be deleted
//! (ResourceInUse; ScalingActivityInProgress while some terminate), and template versions honour client tokens.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use release_core::model::clock::{Clock, Timestamp};
use release_core::model::error::Cause;
use release_core::model::ids::{AppName, InstanceId};
use release_core::model::pipeline::LbTarget;
use release_core::ports::{
    tags, Activity, ActivityStatus, Attachment, AttachmentState, AutoScaling, Capacity, CapacityChange, DeletedVersions, Group, GroupInstance,
    GroupSpec, Instance, InstanceHealth, InstanceState, LaunchTemplate, LaunchTemplateId, LaunchTemplates, Lifecycle, Process, ScalingPolicy,
    ScheduledAction, TemplateSpec, TemplateVersion, TemplateVersionInfo,
};
use release_core::{Error, Result};

use crate::memory::{call_error, missing, MemoryCloud, State};

/// How often a group retries a launch that failed (AWS: about every 10 s, each try a failed activity).
const RETRY: Duration = Duration::from_secs(10);

/// Launch templates and groups, inside the memory cloud's [`State`].
#[derive(Debug, Default)]
pub struct Scaling {
    /// Templates by id.
    pub templates: BTreeMap<String, MemTemplate>,
    /// Groups by name.
    pub groups: BTreeMap<String, MemGroup>,
    /// How long a launched group instance stays Pending before it is InService (zero: at once, as in the emulator).
    pub launch_delay: Duration,
    /// Scripted launch failures: the next launches of any group fail with these reasons, one per try.
    pub launch_failures: Vec<String>,
}

/// One launch template.
#[derive(Debug, Clone)]
pub struct MemTemplate {
    /// Its name.
    pub name: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// Its versions: what each launches (none: the placeholder) and when it was made.
    pub versions: BTreeMap<u32, (Option<TemplateSpec>, Timestamp)>,
    /// The default version.
    pub default: u32,
    /// The highest version number given so far (numbers are never reused).
    pub latest: u32,
    /// Client tokens seen: token -> the version it made.
    pub tokens: BTreeMap<String, u32>,
}

/// One instance of a group.
#[derive(Debug, Clone)]
pub struct Member {
    /// The instance.
    pub id: InstanceId,
    /// Where it is in its life.
    pub lifecycle: Lifecycle,
    /// Auto Scaling's judgement.
    pub health: InstanceHealth,
    /// Its zone.
    pub zone: String,
    /// The template version it was launched from.
    pub version: TemplateVersion,
    /// When it was launched.
    pub launched: Timestamp,
    /// Terminating: when it leaves (its deregistration delay over).
    pub leaves: Option<Timestamp>,
}

/// One group.
#[derive(Debug, Clone)]
pub struct MemGroup {
    /// What it was made with.
    pub spec: GroupSpec,
    /// Its capacity now.
    pub capacity: Capacity,
    /// Its instances (Pending, InService, Terminating).
    pub members: Vec<Member>,
    /// Suspended processes.
    pub suspended: BTreeSet<Process>,
    /// Attached load balancers: state, and for Removing when it is gone.
    pub attached: BTreeMap<LbTarget, (AttachmentState, Timestamp)>,
    /// Scaling activities, newest first.
    pub activities: Vec<Activity>,
    /// Scaling policies.
    pub policies: Vec<ScalingPolicy>,
    /// Scheduled actions.
    pub scheduled: Vec<ScheduledAction>,
    /// When it was made.
    pub created: Timestamp,
    /// No launch try before this time (after a failed one).
    pub next_try: Timestamp,
}

fn invalid(operation: &str, message: impl Into<String>) -> Error {
    call_error(operation, "ValidationError", message).with_cause(Cause::Invalid).with_code("ValidationError")
}

fn no_group(operation: &str, name: &str) -> Error {
    missing(operation, "ValidationError", format!("AutoScalingGroup name not found - AutoScalingGroup '{name}' not found")).with_code("ValidationError")
}

fn check_capacity(operation: &str, c: Capacity) -> Result<()> {
    if c.min > c.max {
        return Err(invalid(operation, format!("Max size:{} must be greater than or equal to min size:{}", c.max, c.min)));
    }
    if c.desired < c.min || c.desired > c.max {
        return Err(invalid(operation, format!("Desired capacity:{} must be between the specified min size:{} and max size:{}", c.desired, c.min, c.max)));
    }
    Ok(())
}

fn activity(s: &mut State, status: ActivityStatus, description: String, cause: &str, message: Option<String>, now: Timestamp) -> Activity {
    Activity { id: s.id("act-"), status, description, cause: cause.to_owned(), status_message: message, start: Some(now) }
}

/// Brings every group up to `now`: lifecycles, health, replacement, capacity, attachments.
pub(crate) fn settle(s: &mut State, now: Timestamp) {
    let mut groups = std::mem::take(&mut s.scaling.groups);
    for g in groups.values_mut() {
        progress(s, g, now);
        judge_health(s, g, now);
        reconcile(s, g, now);
        attachments(s, g, now);
    }
    s.scaling.groups = groups;
}

/// Pending -> InService after the launch delay (registered with the attached load balancers); Terminating ->
/// terminated once its deregistration delay is over.
fn progress(s: &mut State, g: &mut MemGroup, now: Timestamp) {
    let delay = s.scaling.launch_delay;
    let register = !g.suspended.contains(&Process::AddToLoadBalancer);
    let targets: Vec<LbTarget> = g.attached.iter().filter(|(_, (st, _))| *st != AttachmentState::Removing).map(|(t, _)| t.clone()).collect();
    for m in g.members.iter_mut().filter(|m| m.lifecycle == Lifecycle::Pending && now.since(m.launched) >= delay) {
        m.lifecycle = Lifecycle::InService;
        if register {
            for t in &targets {
                s.registered.entry(t.clone()).or_default().entry(m.id.clone()).or_insert(now);
            }
        }
    }
    let gone: Vec<InstanceId> = g.members.iter().filter(|m| m.leaves.is_some_and(|t| now >= t)).map(|m| m.id.clone()).collect();
    for i in s.instances.iter_mut().filter(|i| gone.contains(&i.id)) {
        i.state = InstanceState::Terminated;
    }
    g.members.retain(|m| !gone.contains(&m.id));
}

/// Past the grace period, an instance not running, or one its load balancer never finds healthy, is Unhealthy
/// (health check type ELB); unhealthy ones are replaced.
fn judge_health(s: &mut State, g: &mut MemGroup, now: Timestamp) {
    if g.suspended.contains(&Process::HealthCheck) {
        return;
    }
    let attached = g.attached.values().any(|(st, _)| *st != AttachmentState::Removing);
    for m in g.members.iter_mut().filter(|m| m.lifecycle == Lifecycle::InService) {
        let running = s.instances.iter().any(|i| i.id == m.id && i.state == InstanceState::Running);
        let sick = attached && s.sick.contains(&m.id) && now.since(m.launched) >= g.spec.health_check_grace;
        if !running || sick {
            m.health = InstanceHealth::Unhealthy;
        }
    }
    if g.suspended.contains(&Process::ReplaceUnhealthy) || g.suspended.contains(&Process::Terminate) {
        return;
    }
    let unhealthy: Vec<InstanceId> = g.members.iter().filter(|m| m.lifecycle == Lifecycle::InService && m.health == InstanceHealth::Unhealthy).map(|m| m.id.clone()).collect();
    for id in unhealthy {
        let a = activity(s, ActivityStatus::Successful, format!("Terminating EC2 instance: {id}"), "an instance was taken out of service in response to an ELB system health check failure", None, now);
        g.activities.insert(0, a);
        leave(s, g, &id, now);
    }
}

/// Sends a member on its way out: deregistered from the attached load balancers (target groups keep it draining
/// for their deregistration delay), terminated when that is over.
fn leave(s: &mut State, g: &mut MemGroup, id: &InstanceId, now: Timestamp) {
    let mut delay = Duration::ZERO;
    for t in g.attached.keys() {
        if s.registered.get_mut(t).is_some_and(|m| m.remove(id).is_some()) {
            let drain = s.load_balancers.get(t).map(|(_, spec)| spec.drain).unwrap_or_default();
            delay = delay.max(drain);
            if matches!(t, LbTarget::TargetGroup(_)) {
                s.draining.entry(t.clone()).or_default().insert(id.clone(), now.add(drain));
            }
        }
    }
    if let Some(m) = g.members.iter_mut().find(|m| &m.id == id) {
        m.lifecycle = Lifecycle::Terminating;
        m.leaves = Some(now.add(delay));
    }
}

/// Launches (unless Launch is suspended) or terminates (unless Terminate is) toward the desired capacity.
fn reconcile(s: &mut State, g: &mut MemGroup, now: Timestamp) {
    let counted = g.members.iter().filter(|m| matches!(m.lifecycle, Lifecycle::Pending | Lifecycle::InService)).count() as u32;
    let desired = g.capacity.desired;
    if counted < desired && !g.suspended.contains(&Process::Launch) && now >= g.next_try {
        for _ in counted..desired {
            if let Err(why) = launch_one(s, g, now) {
                let a = activity(s, ActivityStatus::Failed, "Launching a new EC2 instance.  Status Reason: ".to_owned() + &why, "an instance was started in response to a difference between desired and actual capacity", Some(why), now);
                g.activities.insert(0, a);
                g.next_try = now.add(RETRY);
                break;
            }
        }
    }
    if counted > desired && !g.suspended.contains(&Process::Terminate) {
        for _ in desired..counted {
            let Some(id) = scale_in_choice(g) else { break };
            let a = activity(s, ActivityStatus::Successful, format!("Terminating EC2 instance: {id}"), "an instance was taken out of service in response to a difference between desired and actual capacity", None, now);
            g.activities.insert(0, a);
            leave(s, g, &id, now);
        }
    }
}

/// AWS's default termination policy, simplified: from the zone with the most instances, the one launched from
/// the oldest template version, the newest of those last.
fn scale_in_choice(g: &MemGroup) -> Option<InstanceId> {
    let live: Vec<&Member> = g.members.iter().filter(|m| matches!(m.lifecycle, Lifecycle::Pending | Lifecycle::InService)).collect();
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &live {
        *per_zone.entry(m.zone.as_str()).or_default() += 1;
    }
    let zone = per_zone.iter().max_by_key(|(_, n)| **n).map(|(z, _)| *z)?;
    live.iter().filter(|m| m.zone == zone).min_by_key(|m| (m.version, m.launched)).map(|m| m.id.clone())
}

/// One instance from the group's template version, in its least used zone that has capacity; the reason when it
/// cannot launch.
fn launch_one(s: &mut State, g: &mut MemGroup, now: Timestamp) -> std::result::Result<(), String> {
    if !s.scaling.launch_failures.is_empty() {
        return Err(s.scaling.launch_failures.remove(0));
    }
    let version = g.spec.template.version;
    let spec = s.scaling.templates.get(&g.spec.template.id.0).and_then(|t| t.versions.get(&version.0)).and_then(|(spec, _)| spec.clone());
    let Some(spec) = spec else {
        return Err(format!("The specified launch template version {version} of {} does not exist or launches no image. Launching EC2 instance failed.", g.spec.template.id));
    };
    if !s.images.contains_key(&spec.ami) {
        return Err(format!("The image id '[{}]' does not exist. Launching EC2 instance failed.", spec.ami));
    }
    let zones: Vec<(String, String)> =
        s.subnets.iter().filter(|x| g.spec.subnets.contains(&x.id)).map(|x| (x.id.clone(), x.availability_zone.clone())).collect();
    let open: Vec<&(String, String)> = zones.iter().filter(|(_, z)| !s.capacity_out.contains(z)).collect();
    let Some((_, zone)) = open.into_iter().min_by_key(|(_, z)| g.members.iter().filter(|m| &m.zone == z).count()) else {
        return Err(format!(
            "We currently do not have sufficient {} capacity in the Availability Zone you requested. Launching EC2 instance failed.",
            spec.instance_type
        ));
    };
    let id = InstanceId::parse(&s.id("i-")).expect("valid id");
    let mut tags: BTreeMap<String, String> = spec.tags.iter().cloned().collect();
    tags.extend(g.spec.tags.iter().cloned());
    tags.insert("aws:autoscaling:groupName".into(), g.spec.name.clone());
    s.instances.push(Instance { id: id.clone(), ami: spec.ami.to_string(), state: InstanceState::Running, tags, zone: zone.clone(), subnet_id: String::new(), vpc_id: s.vpc_id.clone(), groups: Default::default() });
    s.user_data.insert(id.clone(), spec.user_data.clone());
    s.launched_at.insert(id.clone(), now);
    let a = activity(s, ActivityStatus::Successful, format!("Launching a new EC2 instance: {id}"), "an instance was started in response to a difference between desired and actual capacity", None, now);
    g.activities.insert(0, a);
    g.members.push(Member { id, lifecycle: Lifecycle::Pending, health: InstanceHealth::Healthy, zone: zone.clone(), version, launched: now, leaves: None });
    Ok(())
}

/// Adding -> Added -> InService (a member healthy in it); Removing -> gone after the deregistration delay.
fn attachments(s: &mut State, g: &mut MemGroup, now: Timestamp) {
    let healthy_after = s.healthy_after;
    let mut gone = Vec::new();
    for (t, (state, until)) in g.attached.iter_mut() {
        match state {
            AttachmentState::Removing if now >= *until => gone.push(t.clone()),
            AttachmentState::Adding => *state = AttachmentState::Added,
            AttachmentState::Added => {
                let members = s.registered.get(t);
                let healthy = g.members.iter().any(|m| {
                    members.and_then(|r| r.get(&m.id)).is_some_and(|since| !s.sick.contains(&m.id) && healthy_after.is_some_and(|d| now.since(*since) >= d))
                });
                if healthy {
                    *state = AttachmentState::InService;
                }
            }
            _ => {}
        }
    }
    for t in gone {
        g.attached.remove(&t);
    }
}

impl MemoryCloud {
    /// A call of the Auto Scaling port: counted, faults applied, every group brought up to now.
    fn scaling_call(&self, op: &'static str) -> Result<std::sync::MutexGuard<'_, State>> {
        let mut s = self.call(op)?;
        settle(&mut s, self.clock.now());
        Ok(s)
    }

    /// Makes the next `reasons.len()` launch tries of any group fail with these reasons (capacity, a quota).
    pub fn fail_launches(&self, reasons: &[&str]) {
        self.state().scaling.launch_failures.extend(reasons.iter().map(|r| r.to_string()));
    }

    /// Plants a scheduled action on a group, as someone would by hand.
    pub fn plant_scheduled_action(&self, group: &str, action: ScheduledAction) {
        if let Some(g) = self.state().scaling.groups.get_mut(group) {
            g.scheduled.push(action);
        }
    }

    /// A group's members as the memory cloud holds them, brought up to now.
    pub fn group_members(&self, group: &str) -> Vec<Member> {
        let mut s = self.state();
        settle(&mut s, self.clock.now());
        s.scaling.groups.get(group).map(|g| g.members.clone()).unwrap_or_default()
    }
}

fn template_view(id: &str, t: &MemTemplate) -> LaunchTemplate {
    LaunchTemplate {
        id: LaunchTemplateId(id.to_owned()),
        name: t.name.clone(),
        default_version: TemplateVersion(t.default),
        latest_version: TemplateVersion(t.latest),
        tags: t.tags.clone(),
    }
}

fn template_missing(op: &str, id: &LaunchTemplateId) -> Error {
    missing(op, "InvalidLaunchTemplateId.NotFound", format!("The specified launch template, with template ID {id}, does not exist.")).with_code("InvalidLaunchTemplateId.NotFound")
}

#[async_trait]
impl LaunchTemplates for MemoryCloud {
    async fn template(&self, name: &str) -> Result<Option<LaunchTemplate>> {
        let s = self.call("ec2:DescribeLaunchTemplates")?;
        Ok(s.scaling.templates.iter().find(|(_, t)| t.name == name).map(|(id, t)| template_view(id, t)))
    }

    async fn app_templates(&self, app: &AppName) -> Result<Vec<LaunchTemplate>> {
        let s = self.call("ec2:DescribeLaunchTemplates")?;
        Ok(s.scaling.templates.iter().filter(|(_, t)| t.tags.get(tags::APP).map(String::as_str) == Some(app.as_str())).map(|(id, t)| template_view(id, t)).collect())
    }

    async fn ensure_template(&self, name: &str, new_tags: &[(String, String)]) -> Result<LaunchTemplate> {
        let mut s = self.call("ec2:CreateLaunchTemplate")?;
        if let Some((id, t)) = s.scaling.templates.iter().find(|(_, t)| t.name == name) {
            return Ok(template_view(id, t));
        }
        let id = s.id("lt-");
        let now = self.clock.now();
        let t = MemTemplate {
            name: name.to_owned(),
            tags: new_tags.iter().cloned().collect(),
            versions: BTreeMap::from([(1, (None, now))]),
            default: 1,
            latest: 1,
            tokens: BTreeMap::new(),
        };
        let view = template_view(&id, &t);
        s.scaling.templates.insert(id, t);
        Ok(view)
    }

    async fn create_version(&self, template: &LaunchTemplateId, spec: &TemplateSpec, client_token: &str) -> Result<TemplateVersion> {
        const OP: &str = "ec2 CreateLaunchTemplateVersion";
        let mut s = self.call("ec2:CreateLaunchTemplateVersion")?;
        let now = self.clock.now();
        let t = s.scaling.templates.get_mut(&template.0).ok_or_else(|| template_missing(OP, template))?;
        if let Some(n) = t.tokens.get(client_token).copied() {
            // EC2's idempotency: the same token and parameters answer with the version made the first time.
            if t.versions.get(&n).and_then(|(v, _)| v.as_ref()) == Some(spec) {
                return Ok(TemplateVersion(n));
            }
            return Err(call_error(OP, "IdempotentParameterMismatch", format!("client token {client_token} was used with other parameters"))
                .with_cause(Cause::TokenReused)
                .with_code("IdempotentParameterMismatch"));
        }
        t.latest += 1;
        let n = t.latest;
        t.versions.insert(n, (Some(spec.clone()), now));
        t.tokens.insert(client_token.to_owned(), n);
        Ok(TemplateVersion(n))
    }

    async fn versions(&self, template: &LaunchTemplateId) -> Result<Vec<TemplateVersionInfo>> {
        let s = self.call("ec2:DescribeLaunchTemplateVersions")?;
        let t = s.scaling.templates.get(&template.0).ok_or_else(|| template_missing("ec2 DescribeLaunchTemplateVersions", template))?;
        Ok(t.versions
            .iter()
            .map(|(n, (spec, created))| TemplateVersionInfo {
                number: TemplateVersion(*n),
                ami: spec.as_ref().map(|s| s.ami.clone()),
                is_default: *n == t.default,
                created: Some(*created),
                description: spec.as_ref().map(|s| s.description.clone()),
            })
            .collect())
    }

    async fn delete_versions(&self, template: &LaunchTemplateId, versions: &[TemplateVersion]) -> Result<DeletedVersions> {
        let mut s = self.call("ec2:DeleteLaunchTemplateVersions")?;
        let t = s.scaling.templates.get_mut(&template.0).ok_or_else(|| template_missing("ec2 DeleteLaunchTemplateVersions", template))?;
        let mut out = DeletedVersions::default();
        for v in versions {
            if v.0 == t.default {
                out.failed.push((*v, "unexpectedError: the default version of a launch template cannot be deleted".into()));
            } else if t.versions.remove(&v.0).is_some() {
                out.deleted.push(*v);
            } else {
                out.failed.push((*v, format!("launchTemplateVersionDoesNotExist: version {v} does not exist")));
            }
        }
        Ok(out)
    }
}

fn group_view(g: &MemGroup) -> Group {
    Group {
        name: g.spec.name.clone(),
        capacity: g.capacity,
        template: Some(g.spec.template.clone()),
        instances: g
            .members
            .iter()
            .map(|m| GroupInstance { id: m.id.clone(), lifecycle: m.lifecycle.clone(), health: m.health, zone: m.zone.clone(), template_version: Some(m.version) })
            .collect(),
        suspended: g.suspended.clone(),
        load_balancers: g.attached.iter().filter(|(_, (st, _))| *st != AttachmentState::Removing).map(|(t, _)| t.clone()).collect(),
        tags: g.spec.tags.iter().cloned().collect(),
        created: Some(g.created),
        status: None,
        health_check_grace: g.spec.health_check_grace,
    }
}

/// Attaching a load balancer that does not exist is a ValidationError in Auto Scaling.
fn known_targets(s: &State, op: &str, targets: &[LbTarget]) -> Result<()> {
    match targets.iter().find(|t| !s.load_balancers.contains_key(*t)) {
        Some(t) => Err(invalid(op, format!("Provided {t} may not be valid"))),
        None => Ok(()),
    }
}

/// Registers the group's InService members with `t` (AddToLoadBalancer permitting) and marks it Adding.
fn attach_one(s: &mut State, g: &mut MemGroup, t: &LbTarget, now: Timestamp) {
    if !g.suspended.contains(&Process::AddToLoadBalancer) {
        let members = s.registered.entry(t.clone()).or_default();
        for m in g.members.iter().filter(|m| m.lifecycle == Lifecycle::InService) {
            members.entry(m.id.clone()).or_insert(now);
        }
    }
    g.attached.insert(t.clone(), (AttachmentState::Adding, now));
}

#[async_trait]
impl AutoScaling for MemoryCloud {
    async fn create(&self, spec: &GroupSpec) -> Result<()> {
        const OP: &str = "autoscaling CreateAutoScalingGroup";
        let mut s = self.scaling_call("autoscaling:CreateAutoScalingGroup")?;
        if s.scaling.groups.contains_key(&spec.name) {
            return Err(call_error(OP, "AlreadyExists", format!("AutoScalingGroup by this name already exists - A group with the name {} already exists", spec.name))
                .with_cause(Cause::AlreadyExists)
                .with_code("AlreadyExists"));
        }
        check_capacity(OP, spec.capacity)?;
        let has_version = s.scaling.templates.get(&spec.template.id.0).is_some_and(|t| t.versions.contains_key(&spec.template.version.0));
        if !has_version {
            return Err(invalid(OP, format!("The specified launch template, with template ID {}, version {}, does not exist", spec.template.id, spec.template.version)));
        }
        if spec.subnets.is_empty() || spec.subnets.iter().any(|id| !s.subnets.iter().any(|x| &x.id == id)) {
            return Err(invalid(OP, format!("The subnet ID '{}' does not exist", spec.subnets.join(","))));
        }
        known_targets(&s, OP, &spec.load_balancers)?;
        let now = self.clock.now();
        let mut g = MemGroup {
            spec: spec.clone(),
            capacity: spec.capacity,
            members: Vec::new(),
            suspended: BTreeSet::new(),
            attached: BTreeMap::new(),
            activities: Vec::new(),
            policies: Vec::new(),
            scheduled: Vec::new(),
            created: now,
            next_try: now,
        };
        for t in &spec.load_balancers {
            attach_one(&mut s, &mut g, t, now);
        }
        s.scaling.groups.insert(spec.name.clone(), g);
        settle(&mut s, now);
        Ok(())
    }

    async fn app_groups(&self, app: &AppName) -> Result<Vec<Group>> {
        let s = self.scaling_call("autoscaling:DescribeAutoScalingGroups")?;
        Ok(s.scaling.groups.values().filter(|g| g.spec.tags.iter().any(|(k, v)| k == tags::APP && v == app.as_str())).map(group_view).collect())
    }

    async fn attach(&self, group: &str, targets: &[LbTarget]) -> Result<()> {
        const OP: &str = "autoscaling AttachLoadBalancerTargetGroups";
        let mut s = self.scaling_call("autoscaling:AttachLoadBalancerTargetGroups")?;
        known_targets(&s, OP, targets)?;
        let mut g = s.scaling.groups.remove(group).ok_or_else(|| no_group(OP, group))?;
        let now = self.clock.now();
        let new: Vec<LbTarget> = targets.iter().filter(|t| !g.attached.get(*t).is_some_and(|(st, _)| *st != AttachmentState::Removing)).cloned().collect();
        for t in &new {
            attach_one(&mut s, &mut g, t, now);
        }
        s.scaling.groups.insert(group.to_owned(), g);
        Ok(())
    }

    async fn detach(&self, group: &str, targets: &[LbTarget]) -> Result<()> {
        const OP: &str = "autoscaling DetachLoadBalancerTargetGroups";
        let mut s = self.scaling_call("autoscaling:DetachLoadBalancerTargetGroups")?;
        let mut g = s.scaling.groups.remove(group).ok_or_else(|| no_group(OP, group))?;
        let now = self.clock.now();
        let leaving: Vec<LbTarget> = targets.iter().filter(|t| g.attached.contains_key(*t)).cloned().collect();
        for t in &leaving {
            let drain = s.load_balancers.get(t).map(|(_, spec)| spec.drain).unwrap_or_default();
            if let Some(members) = s.registered.get_mut(t) {
                let ids: Vec<InstanceId> = g.members.iter().map(|m| m.id.clone()).filter(|id| members.remove(id).is_some()).collect();
                if matches!(t, LbTarget::TargetGroup(_)) {
                    s.draining.entry(t.clone()).or_default().extend(ids.into_iter().map(|id| (id, now.add(drain))));
                }
            }
            g.attached.insert(t.clone(), (AttachmentState::Removing, now.add(drain)));
        }
        s.scaling.groups.insert(group.to_owned(), g);
        Ok(())
    }

    async fn attachments(&self, group: &str) -> Result<Vec<Attachment>> {
        let s = self.scaling_call("autoscaling:DescribeLoadBalancerTargetGroups")?;
        let g = s.scaling.groups.get(group).ok_or_else(|| no_group("autoscaling DescribeLoadBalancerTargetGroups", group))?;
        Ok(g.attached.iter().map(|(t, (state, _))| Attachment { target: t.clone(), state: state.clone() }).collect())
    }

    async fn set_capacity(&self, group: &str, change: &CapacityChange) -> Result<()> {
        const OP: &str = "autoscaling UpdateAutoScalingGroup";
        let mut s = self.scaling_call("autoscaling:UpdateAutoScalingGroup")?;
        let g = s.scaling.groups.get_mut(group).ok_or_else(|| no_group(OP, group))?;
        let c = Capacity { min: change.min.unwrap_or(g.capacity.min), desired: change.desired.unwrap_or(g.capacity.desired), max: change.max.unwrap_or(g.capacity.max) };
        check_capacity(OP, c)?;
        g.capacity = c;
        settle(&mut s, self.clock.now());
        Ok(())
    }

    async fn suspend(&self, group: &str, processes: &[Process]) -> Result<()> {
        let mut s = self.scaling_call("autoscaling:SuspendProcesses")?;
        let g = s.scaling.groups.get_mut(group).ok_or_else(|| no_group("autoscaling SuspendProcesses", group))?;
        g.suspended.extend(processes.iter().copied());
        Ok(())
    }

    async fn resume(&self, group: &str, processes: &[Process]) -> Result<()> {
        let mut s = self.scaling_call("autoscaling:ResumeProcesses")?;
        let g = s.scaling.groups.get_mut(group).ok_or_else(|| no_group("autoscaling ResumeProcesses", group))?;
        g.suspended.retain(|p| !processes.contains(p));
        settle(&mut s, self.clock.now());
        Ok(())
    }

    async fn tag(&self, group: &str, new_tags: &[(String, String)]) -> Result<()> {
        let mut s = self.scaling_call("autoscaling:CreateOrUpdateTags")?;
        let g = s.scaling.groups.get_mut(group).ok_or_else(|| no_group("autoscaling CreateOrUpdateTags", group))?;
        for (k, v) in new_tags {
            g.spec.tags.retain(|(have, _)| have != k);
            g.spec.tags.push((k.clone(), v.clone()));
        }
        Ok(())
    }

    async fn untag(&self, group: &str, keys: &[String]) -> Result<()> {
        let mut s = self.scaling_call("autoscaling:DeleteTags")?;
        let g = s.scaling.groups.get_mut(group).ok_or_else(|| no_group("autoscaling DeleteTags", group))?;
        g.spec.tags.retain(|(k, _)| !keys.contains(k));
        Ok(())
    }

    async fn put_cpu_policy(&self, group: &str, name: &str, percent: u8) -> Result<()> {
        let mut s = self.scaling_call("autoscaling:PutScalingPolicy")?;
        let g = s.scaling.groups.get_mut(group).ok_or_else(|| no_group("autoscaling PutScalingPolicy", group))?;
        g.policies.retain(|p| p.name != name);
        g.policies.push(ScalingPolicy { name: name.to_owned(), kind: "TargetTrackingScaling".into(), cpu_target: Some(percent) });
        Ok(())
    }

    async fn policies(&self, group: &str) -> Result<Vec<ScalingPolicy>> {
        let s = self.scaling_call("autoscaling:DescribePolicies")?;
        Ok(s.scaling.groups.get(group).map(|g| g.policies.clone()).unwrap_or_default())
    }

    async fn scheduled_actions(&self, group: &str) -> Result<Vec<ScheduledAction>> {
        let s = self.scaling_call("autoscaling:DescribeScheduledActions")?;
        Ok(s.scaling.groups.get(group).map(|g| g.scheduled.clone()).unwrap_or_default())
    }

    async fn activities(&self, group: &str, limit: u32) -> Result<Vec<Activity>> {
        let s = self.scaling_call("autoscaling:DescribeScalingActivities")?;
        Ok(s.scaling.groups.get(group).map(|g| g.activities.iter().take(limit as usize).cloned().collect()).unwrap_or_default())
    }

    async fn delete(&self, group: &str) -> Result<()> {
        const OP: &str = "autoscaling DeleteAutoScalingGroup";
        let mut s = self.scaling_call("autoscaling:DeleteAutoScalingGroup")?;
        let g = s.scaling.groups.get(group).ok_or_else(|| no_group(OP, group))?;
        if g.members.iter().any(|m| m.lifecycle == Lifecycle::Terminating) {
            return Err(call_error(OP, "ScalingActivityInProgress", "You cannot delete an AutoScalingGroup while there are scaling activities in progress for that group.")
                .with_cause(Cause::ScalingInProgress)
                .with_code("ScalingActivityInProgress"));
        }
        if !g.members.is_empty() {
            return Err(call_error(OP, "ResourceInUse", "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s) still in the group.")
                .with_cause(Cause::InUse)
                .with_code("ResourceInUse"));
        }
        s.scaling.groups.remove(group);
        Ok(())
    }
}
