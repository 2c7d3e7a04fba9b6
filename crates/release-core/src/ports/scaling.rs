//! Auto Scaling group fleets (issue 22): launch templates (`LaunchTemplates`, EC2) and groups (`AutoScaling`).
//! Domain values only; the AWS implementation maps them onto aws-sdk-ec2 and aws-sdk-autoscaling, the in-memory one
//! models what the emulator does not (lifecycle states, ELB health, replacement, failed activities, suspended
//! processes, the capacity bounds).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::model::clock::Timestamp;
use crate::model::error::Result;
use crate::model::ids::{AmiId, AppName, InstanceId};
use crate::model::pipeline::{LbTarget, MetadataTokens, RootVolume};

/// A launch template's id (`lt-0abc...`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct LaunchTemplateId(pub String);

impl std::fmt::Display for LaunchTemplateId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A launch template version's number (1, 2, ...). Groups always name a number, never `$Latest` or `$Default`: a
/// later version must never change what a running release launches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TemplateVersion(pub u32);

impl std::fmt::Display for TemplateVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A launch template as `release` sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LaunchTemplate {
    /// Its id.
    pub id: LaunchTemplateId,
    /// Its name (`<app>-<cluster>`).
    pub name: String,
    /// The default version (the placeholder made with the template; never deleted).
    pub default_version: TemplateVersion,
    /// The newest version.
    pub latest_version: TemplateVersion,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// What one launch template version launches: the part of a [`LaunchSpec`](super::LaunchSpec) a group does not
/// decide (the group picks subnets and counts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TemplateSpec {
    /// The image.
    pub ami: AmiId,
    /// The instance type.
    pub instance_type: String,
    /// The boot script, in clear; the implementation encodes it as the API wants.
    pub user_data: String,
    /// IMDSv2 required or not.
    pub metadata_tokens: MetadataTokens,
    /// The IAM instance profile, by name.
    pub instance_profile: Option<String>,
    /// An EC2 key pair.
    pub key_name: Option<String>,
    /// Security groups of the instances (ids).
    pub security_groups: Vec<String>,
    /// The root volume and the AMI's root device name it applies to.
    pub root_volume: Option<(String, RootVolume)>,
    /// Tags the instances and their volumes get at launch (tag specifications of the version).
    pub tags: Vec<(String, String)>,
    /// The version's description (the release it was made for).
    pub description: String,
}

/// One version of a launch template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TemplateVersionInfo {
    /// Its number.
    pub number: TemplateVersion,
    /// The image it launches (none for the placeholder default version).
    pub ami: Option<AmiId>,
    /// Whether it is the template's default version (never deleted).
    pub is_default: bool,
    /// When it was made.
    pub created: Option<Timestamp>,
    /// Its description.
    pub description: Option<String>,
}

/// What a DeleteLaunchTemplateVersions call did: AWS answers per version, not all or nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeletedVersions {
    /// The versions deleted.
    pub deleted: Vec<TemplateVersion>,
    /// The versions not deleted, with AWS's code and message (`InvalidLaunchTemplateId.VersionNotFound`, the
    /// default version).
    pub failed: Vec<(TemplateVersion, String)>,
}

/// EC2 launch templates, one per asg cluster (`<app>-<cluster>`), one numbered version per release.
#[async_trait]
pub trait LaunchTemplates: Send + Sync {
    /// The template of that name, if it exists.
    async fn template(&self, name: &str) -> Result<Option<LaunchTemplate>>;
    /// Every template tagged `release:app = app`, in one (paginated) describe.
    async fn app_templates(&self, app: &AppName) -> Result<Vec<LaunchTemplate>>;
    /// The template named `name`, created when missing (tagged with `tags`, which carry `release:app` and
    /// `release:managed`). Its first version, the default, is a placeholder that launches nothing of ours (IMDSv2
    /// required, no image): every release has a numbered version of its own. A template created meanwhile by
    /// another run is described and returned, not an error.
    async fn ensure_template(&self, name: &str, tags: &[(String, String)]) -> Result<LaunchTemplate>;
    /// Creates a numbered version from `spec`; a re-run with the same `client_token` returns the version the first
    /// call made instead of a second one (EC2's ClientToken on CreateLaunchTemplateVersion).
    async fn create_version(&self, template: &LaunchTemplateId, spec: &TemplateSpec, client_token: &str) -> Result<TemplateVersion>;
    /// Every version of the template, in one (paginated) describe.
    async fn versions(&self, template: &LaunchTemplateId) -> Result<Vec<TemplateVersionInfo>>;
    /// Deletes versions (AWS refuses the default one: it comes back in `failed`), in calls of 200.
    async fn delete_versions(&self, template: &LaunchTemplateId, versions: &[TemplateVersion]) -> Result<DeletedVersions>;
}

/// An Auto Scaling process (`SuspendProcesses` names them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Process {
    /// Launching instances (scale-out, replacements).
    Launch,
    /// Terminating instances (scale-in, replacements).
    Terminate,
    /// Registering launched instances with the attached load balancers. Never suspended by `release`: instances
    /// launched while it is suspended are never registered later.
    AddToLoadBalancer,
    /// Acting on CloudWatch alarms of scaling policies.
    AlarmNotification,
    /// Rebalancing across zones.
    AZRebalance,
    /// Checking instance health (EC2 and, with health check type ELB, the load balancer's).
    HealthCheck,
    /// Instance refreshes.
    InstanceRefresh,
    /// Replacing unhealthy instances.
    ReplaceUnhealthy,
    /// Scheduled actions.
    ScheduledActions,
}

impl Process {
    /// Every process.
    pub const ALL: [Process; 9] = [
        Process::Launch,
        Process::Terminate,
        Process::AddToLoadBalancer,
        Process::AlarmNotification,
        Process::AZRebalance,
        Process::HealthCheck,
        Process::InstanceRefresh,
        Process::ReplaceUnhealthy,
        Process::ScheduledActions,
    ];

    /// AWS's name of the process.
    pub fn as_str(self) -> &'static str {
        match self {
            Process::Launch => "Launch",
            Process::Terminate => "Terminate",
            Process::AddToLoadBalancer => "AddToLoadBalancer",
            Process::AlarmNotification => "AlarmNotification",
            Process::AZRebalance => "AZRebalance",
            Process::HealthCheck => "HealthCheck",
            Process::InstanceRefresh => "InstanceRefresh",
            Process::ReplaceUnhealthy => "ReplaceUnhealthy",
            Process::ScheduledActions => "ScheduledActions",
        }
    }

    /// The process AWS names `name`, if it is one.
    pub fn from_aws(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl std::fmt::Display for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an instance of a group is in its life (`LifecycleState`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lifecycle {
    /// Launching (and `Pending:Wait`/`Pending:Proceed` of a launch hook).
    Pending,
    /// Serving: counted in the group's capacity.
    InService,
    /// Being terminated (and `Terminating:Wait`/`Terminating:Proceed`).
    Terminating,
    /// Terminated.
    Terminated,
    /// In standby, detaching, warmed, ... : the state as AWS names it.
    Other(String),
}

impl Lifecycle {
    /// The state AWS names `name`.
    pub fn from_aws(name: &str) -> Self {
        match name {
            "Pending" | "Pending:Wait" | "Pending:Proceed" => Lifecycle::Pending,
            "InService" => Lifecycle::InService,
            "Terminating" | "Terminating:Wait" | "Terminating:Proceed" => Lifecycle::Terminating,
            "Terminated" => Lifecycle::Terminated,
            other => Lifecycle::Other(other.to_owned()),
        }
    }
}

/// A group instance's health as Auto Scaling judges it (`HealthStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceHealth {
    /// Healthy.
    Healthy,
    /// Unhealthy: to be replaced (unless ReplaceUnhealthy is suspended).
    Unhealthy,
}

/// One instance of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupInstance {
    /// The instance.
    pub id: InstanceId,
    /// Where it is in its life.
    pub lifecycle: Lifecycle,
    /// Auto Scaling's judgement of its health.
    pub health: InstanceHealth,
    /// Its availability zone.
    pub zone: String,
    /// The launch template version it was launched from (each instance keeps its own).
    pub template_version: Option<TemplateVersion>,
}

/// A launch template version as a group names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TemplateRef {
    /// The template.
    pub id: LaunchTemplateId,
    /// The version number.
    pub version: TemplateVersion,
}

/// A group's capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Capacity {
    /// MinSize.
    pub min: u32,
    /// DesiredCapacity.
    pub desired: u32,
    /// MaxSize.
    pub max: u32,
}

/// A change of a group's capacity (UpdateAutoScalingGroup): the values given change, the others stay; AWS refuses
/// (ValidationError) a result outside min <= desired <= max.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CapacityChange {
    /// A new MinSize.
    pub min: Option<u32>,
    /// A new DesiredCapacity.
    pub desired: Option<u32>,
    /// A new MaxSize.
    pub max: Option<u32>,
}

/// A launch or termination lifecycle hook, made with the group (one create call).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LifecycleHookSpec {
    /// Its name.
    pub name: String,
    /// True: on launch (`autoscaling:EC2_INSTANCE_LAUNCHING`); false: on termination.
    pub on_launch: bool,
    /// How long an instance waits in the hook.
    #[serde(serialize_with = "crate::model::clock::ser_duration")]
    pub heartbeat: Duration,
    /// What happens when it times out: true CONTINUE, false ABANDON.
    pub continue_on_timeout: bool,
}

/// Everything a new group is made with, in ONE CreateAutoScalingGroup call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupSpec {
    /// The group's name (unique in the region).
    pub name: String,
    /// The launch template version, by number.
    pub template: TemplateRef,
    /// The subnets it launches in (VPCZoneIdentifier).
    pub subnets: Vec<String>,
    /// Its capacity.
    pub capacity: Capacity,
    /// How long after launch a failing health check does not count (the API's default is 0).
    #[serde(serialize_with = "crate::model::clock::ser_duration")]
    pub health_check_grace: Duration,
    /// DefaultInstanceWarmup.
    #[serde(serialize_with = "crate::model::clock::ser_duration")]
    pub instance_warmup: Duration,
    /// Tags of the group, propagated to its instances at launch.
    pub tags: Vec<(String, String)>,
    /// Load balancers attached at create (empty: created unattached). Health check type is ELB either way.
    pub load_balancers: Vec<LbTarget>,
    /// Lifecycle hooks made with the group.
    pub lifecycle_hooks: Vec<LifecycleHookSpec>,
}

/// An Auto Scaling group as `release` sees it (one DescribeAutoScalingGroups answer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Group {
    /// Its name.
    pub name: String,
    /// Its capacity.
    pub capacity: Capacity,
    /// The launch template version new instances come from.
    pub template: Option<TemplateRef>,
    /// Its instances.
    pub instances: Vec<GroupInstance>,
    /// Processes suspended.
    pub suspended: BTreeSet<Process>,
    /// Load balancers attached (in any attachment state; [`AutoScaling::attachments`] tells which).
    pub load_balancers: Vec<LbTarget>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// When it was created.
    pub created: Option<Timestamp>,
    /// `Delete in progress` while being deleted.
    pub status: Option<String>,
    /// HealthCheckGracePeriod.
    #[serde(serialize_with = "crate::model::clock::ser_duration")]
    pub health_check_grace: Duration,
}

/// Where a load balancer's attachment to a group stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachmentState {
    /// Registering the group's instances.
    Adding,
    /// Registered.
    Added,
    /// At least one instance passed the load balancer's health check (health check type ELB).
    InService,
    /// Deregistering the group's instances (draining).
    Removing,
    /// Detached (about to disappear from the list).
    Removed,
    /// A state AWS added since.
    Other(String),
}

impl AttachmentState {
    /// The state AWS names `name`.
    pub fn from_aws(name: &str) -> Self {
        match name {
            "Adding" => AttachmentState::Adding,
            "Added" => AttachmentState::Added,
            "InService" => AttachmentState::InService,
            "Removing" => AttachmentState::Removing,
            "Removed" => AttachmentState::Removed,
            other => AttachmentState::Other(other.to_owned()),
        }
    }
}

/// One load balancer attached to a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// The load balancer.
    pub target: LbTarget,
    /// Its state.
    pub state: AttachmentState,
}

/// A scaling policy of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScalingPolicy {
    /// Its name.
    pub name: String,
    /// `TargetTrackingScaling`, `StepScaling`, ...
    pub kind: String,
    /// For a target-tracking policy on average CPU: the target percentage.
    pub cpu_target: Option<u8>,
}

/// A scheduled action of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScheduledAction {
    /// Its name.
    pub name: String,
    /// Its cron recurrence, if it recurs.
    pub recurrence: Option<String>,
    /// The capacity it sets.
    pub min: Option<u32>,
    /// The capacity it sets.
    pub desired: Option<u32>,
    /// The capacity it sets.
    pub max: Option<u32>,
}

/// How a scaling activity ended (or that it has not).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActivityStatus {
    /// Done.
    Successful,
    /// Failed: `status_message` says why (capacity, a bad AMI, a quota).
    Failed,
    /// Cancelled.
    Cancelled,
    /// Still going (any of AWS's in-progress states, as named).
    InProgress(String),
}

impl ActivityStatus {
    /// The status AWS names `code`.
    pub fn from_aws(code: &str) -> Self {
        match code {
            "Successful" => ActivityStatus::Successful,
            "Failed" => ActivityStatus::Failed,
            "Cancelled" => ActivityStatus::Cancelled,
            other => ActivityStatus::InProgress(other.to_owned()),
        }
    }
}

/// One scaling activity (launching or terminating instances).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Activity {
    /// Its id.
    pub id: String,
    /// How it ended.
    pub status: ActivityStatus,
    /// `Launching a new EC2 instance: i-0abc`.
    pub description: String,
    /// Why it happened.
    pub cause: String,
    /// AWS's reason for a failure (`We currently do not have sufficient t3.micro capacity ...`).
    pub status_message: Option<String>,
    /// When it started.
    pub start: Option<Timestamp>,
}

/// The name of the target-tracking policy `release` puts on a group (`scaling.cpu`).
pub const CPU_POLICY: &str = "release-cpu";

/// EC2 Auto Scaling groups.
#[async_trait]
pub trait AutoScaling: Send + Sync {
    /// Creates a group in ONE call (health check type ELB; grace, warmup, tags propagated at launch, load
    /// balancers and lifecycle hooks as `spec` says). A group of that name is `Cause::AlreadyExists`.
    async fn create(&self, spec: &GroupSpec) -> Result<()>;
    /// Every group tagged `release:app = app`, in one (paginated) DescribeAutoScalingGroups.
    async fn app_groups(&self, app: &AppName) -> Result<Vec<Group>>;
    /// Attaches load balancers: `AttachLoadBalancerTargetGroups` for target groups, `AttachLoadBalancers` for
    /// classic ELBs (never the traffic sources API).
    async fn attach(&self, group: &str, targets: &[LbTarget]) -> Result<()>;
    /// Detaches load balancers (their deregistration delay / connection draining applies).
    async fn detach(&self, group: &str, targets: &[LbTarget]) -> Result<()>;
    /// The group's load balancers with their attachment state (DescribeLoadBalancerTargetGroups and
    /// DescribeLoadBalancers: two calls). A detached one is `Removed` for a while, then absent.
    async fn attachments(&self, group: &str) -> Result<Vec<Attachment>>;
    /// Changes min, desired and max (UpdateAutoScalingGroup); outside min <= desired <= max is `Cause::Invalid`.
    async fn set_capacity(&self, group: &str, change: &CapacityChange) -> Result<()>;
    /// Suspends processes.
    async fn suspend(&self, group: &str, processes: &[Process]) -> Result<()>;
    /// Resumes processes.
    async fn resume(&self, group: &str, processes: &[Process]) -> Result<()>;
    /// Adds or replaces tags of the group (CreateOrUpdateTags), propagated to instances launched from now on.
    async fn tag(&self, group: &str, tags: &[(String, String)]) -> Result<()>;
    /// Removes tags of the group by key (DeleteTags).
    async fn untag(&self, group: &str, keys: &[String]) -> Result<()>;
    /// Puts a target-tracking policy named `name` on average CPU (`ASGAverageCPUUtilization`) at `percent`.
    async fn put_cpu_policy(&self, group: &str, name: &str, percent: u8) -> Result<()>;
    /// The group's scaling policies, in one (paginated) call.
    async fn policies(&self, group: &str) -> Result<Vec<ScalingPolicy>>;
    /// The group's scheduled actions, in one (paginated) call.
    async fn scheduled_actions(&self, group: &str) -> Result<Vec<ScheduledAction>>;
    /// The group's most recent scaling activities (at most `limit`), newest first, in one call.
    async fn activities(&self, group: &str, limit: u32) -> Result<Vec<Activity>>;
    /// Deletes the group WITHOUT ForceDelete: `Cause::InUse` while it has instances, `Cause::ScalingInProgress`
    /// while an activity runs (set min = desired = 0 and wait first).
    async fn delete(&self, group: &str) -> Result<()>;
}
