//! The ports: one trait per capability of the cloud, each with an AWS implementation (`release-aws`) and an
//! in-memory one (`release-testkit`), held to the same behaviour by one conformance suite.
//! Ports observe and act; they never decide. Decisions live in the engine modules of this crate.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::clock::Clock;
use crate::model::error::Result;
use crate::model::pipeline::{HealthCheck, LbTarget, MetadataTokens, RootVolume};

mod scaling;

pub use scaling::{
    Activity, ActivityStatus, Attachment, AttachmentState, AutoScaling, Capacity, CapacityChange, DeletedVersions, Group, GroupInstance, GroupSpec,
    InstanceHealth, LaunchTemplate, LaunchTemplateId, LaunchTemplates, Lifecycle, LifecycleHookSpec, Process, ScalingPolicy, ScheduledAction,
    TemplateRef, TemplateSpec, TemplateVersion, TemplateVersionInfo, CPU_POLICY,
};

/// Where instances and load balancers live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Network {
    /// The VPC.
    pub vpc_id: String,
    /// Its subnets used, sorted by zone.
    pub subnets: Vec<Subnet>,
}

/// A subnet and its availability zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Subnet {
    /// `subnet-...`.
    pub id: String,
    /// `us-east-1a`.
    pub availability_zone: String,
}

/// EC2 instances (and, for now, the network they run in).
#[async_trait]
pub trait Fleet: Send + Sync {
    /// The given subnets, or every default-for-AZ subnet of the default VPC when `subnets` is empty.
    /// Unknown subnet ids are a not-found error.
    async fn network(&self, subnets: &[String]) -> Result<Network>;
    /// Every non-terminated instance tagged `release:app = app`, in one (paginated) describe.
    async fn app_instances(&self, app: &crate::model::ids::AppName) -> Result<Vec<Instance>>;
    /// Those of `ids` that are in one of `states` (e.g. not yet running), one describe per 1000 ids: waits poll for
    /// what is still pending by id rather than re-reading (and tag-filtering) the whole fleet.
    async fn instances_in(&self, ids: &[crate::model::ids::InstanceId], states: &[&str]) -> Result<Vec<Instance>>;
    /// Launches `spec.count` instances in one call (one RunInstances), tagged in the same call (instances, their
    /// volumes and network interfaces).
    async fn launch(&self, spec: &LaunchSpec) -> Result<Vec<crate::model::ids::InstanceId>>;
    /// The availability zones of this region that offer `instance_type`.
    async fn offered_zones(&self, instance_type: &str) -> Result<std::collections::BTreeSet<String>>;
    /// Terminates the instances in as few calls as the API allows (1000 ids per call).
    async fn terminate(&self, ids: &[crate::model::ids::InstanceId]) -> Result<()>;
    /// The same port in another region of the account (gc: whether a bake's copy runs there).
    async fn in_region(&self, region: &str) -> Result<Arc<dyn Fleet>>;
}

/// One RunInstances call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LaunchSpec {
    /// The image.
    pub ami: crate::model::ids::AmiId,
    /// The instance type.
    pub instance_type: String,
    /// The subnet.
    pub subnet: String,
    /// Security groups of the instances.
    pub security_groups: Vec<String>,
    /// How many.
    pub count: u32,
    /// The boot script, in clear; the implementation encodes it as the API wants.
    pub user_data: String,
    /// Tags written in the same call.
    pub tags: Vec<(String, String)>,
    /// Idempotency token: a retried call with the same token launches nothing new (on AWS); see
    /// [`LaunchSpec::token`].
    pub client_token: String,
    /// The IAM instance profile, by name.
    pub instance_profile: Option<String>,
    /// An EC2 key pair.
    pub key_name: Option<String>,
    /// IMDSv2 required or not.
    pub metadata_tokens: MetadataTokens,
    /// The root volume and the AMI's root device name it applies to.
    pub root_volume: Option<(String, RootVolume)>,
}

impl LaunchSpec {
    /// The idempotency token of this call as the `position`-th launch of `release` (how many of the release's
    /// instances existed before it): `<release>-<hash>`, the hash over the position and every argument. EC2 answers a
    /// token it saw with different arguments with `IdempotentParameterMismatch`, and one it saw with the same
    /// arguments with the instances that call launched; so the same token must always carry the same arguments, and
    /// a run that resumes another (fewer instances left to launch, or a batch already adopted) must not repeat a
    /// token of a different launch. A retry of this very call (same release, position and arguments) repeats it.
    pub fn token(&self, release: &str, position: usize) -> String {
        let mut args = self.clone();
        args.client_token.clear();
        let text = serde_json::to_string(&args).unwrap_or_default();
        let digest = Sha256::digest(format!("release launch v1\n{release}\n{position}\n{text}").as_bytes());
        // EC2 takes at most 64 ASCII characters: a release id (24) and 32 hex digits.
        let token = format!("{release}-{}", &hex::encode(digest)[..32]);
        token.chars().take(64).collect()
    }
}

/// An instance's health in a load balancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthState {
    /// Passing health checks: takes traffic.
    Healthy,
    /// Failing them (classic ELB: OutOfService).
    Unhealthy,
    /// Registered, health checks not passed yet.
    Initial,
    /// Deregistered, finishing in-flight requests.
    Draining,
    /// Registered but taking no traffic, with the reason: in a zone the load balancer is not enabled in
    /// (`Target.NotInUse`), a group no load balancer forwards to, a stopped instance (ELBv2 `unused`).
    Unused,
    /// Anything else.
    Unknown,
}

/// One registered instance and its health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TargetHealth {
    /// The instance.
    pub id: crate::model::ids::InstanceId,
    /// Its health.
    pub state: HealthState,
    /// Why, as the load balancer says it.
    pub reason: Option<String>,
}

/// How a load balancer is configured: what `provision` creates and converges, and reads back to compare.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LbSpec {
    /// The instance port traffic is forwarded to and health-checked on.
    pub port: u16,
    /// The health check path.
    pub health_path: String,
    /// The health check's timing and thresholds.
    pub health: HealthCheck,
    /// Classic ELB connection draining timeout, or the target group's deregistration delay.
    #[serde(serialize_with = "crate::model::clock::ser_duration")]
    pub drain: std::time::Duration,
    /// Balancing across zones (a classic ELB's setting; an ALB always does).
    pub cross_zone: bool,
    /// Security groups of the load balancer.
    pub security_groups: Vec<String>,
}

impl LbSpec {
    /// What differs from `actual`, in words (`health check HTTP:8080/health -> HTTP:8080/ready`).
    pub fn differences(&self, actual: &LbSpec) -> Vec<String> {
        let mut out = Vec::new();
        if self.port != actual.port {
            out.push(format!("instance port {} -> {}", actual.port, self.port));
        }
        if self.health_path != actual.health_path {
            out.push(format!("health path {} -> {}", actual.health_path, self.health_path));
        }
        if self.health != actual.health {
            let h = |h: &HealthCheck| {
                format!(
                    "every {} timeout {} healthy {} unhealthy {}",
                    crate::model::clock::format_duration(h.interval),
                    crate::model::clock::format_duration(h.timeout),
                    h.healthy,
                    h.unhealthy
                )
            };
            out.push(format!("health check {} -> {}", h(&actual.health), h(&self.health)));
        }
        if self.drain != actual.drain {
            out.push(format!("drain {} -> {}", crate::model::clock::format_duration(actual.drain), crate::model::clock::format_duration(self.drain)));
        }
        if self.cross_zone != actual.cross_zone {
            out.push(format!("cross-zone balancing {} -> {}", if actual.cross_zone { "on" } else { "off" }, if self.cross_zone { "on" } else { "off" }));
        }
        let (mut a, mut b) = (actual.security_groups.clone(), self.security_groups.clone());
        a.sort();
        b.sort();
        if a != b {
            out.push(format!("security groups {} -> {}", a.join(","), b.join(",")));
        }
        out
    }
}

/// A load balancer as Route53 alias records need it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LbInfo {
    /// Which.
    pub target: LbTarget,
    /// Its DNS name.
    pub dns_name: String,
    /// The hosted zone of the load balancer's DNS name (alias target zone).
    pub hosted_zone_id: String,
}

/// The part of a cluster's load balancer that does not exist: a target group's cluster needs the group, the ALB
/// of the same name in front of it and the ALB's listener, and any of them can be deleted alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "kebab-case")]
pub enum LbPart {
    /// A classic ELB, or the ALB in front of a target group, by name.
    LoadBalancer(String),
    /// An ELBv2 target group, by name.
    TargetGroup(String),
    /// The listener of the ALB of that name.
    Listener(String),
}

impl LbPart {
    /// The whole of `target`, as far as a port that cannot tell its parts apart knows.
    pub fn whole(target: &LbTarget) -> Self {
        match target {
            LbTarget::ClassicElb(n) => LbPart::LoadBalancer(n.clone()),
            LbTarget::TargetGroup(n) => LbPart::TargetGroup(n.clone()),
        }
    }
}

impl std::fmt::Display for LbPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LbPart::LoadBalancer(n) => write!(f, "load balancer {n}"),
            LbPart::TargetGroup(n) => write!(f, "target group {n}"),
            LbPart::Listener(n) => write!(f, "the listener of load balancer {n}"),
        }
    }
}

/// Classic ELBs and ELBv2 target groups (with the ALB in front of each).
#[async_trait]
pub trait Balancer: Send + Sync {
    /// The subset of `targets` that exists, in one describe per kind of load balancer.
    async fn describe(&self, targets: &[LbTarget]) -> Result<Vec<LbInfo>>;
    /// Creates what is missing for `target` (for a target group: the group, an ALB of the same name and its
    /// listener) in the `network`'s subnets, configured as `spec`, and returns it. Safe to call when parts exist.
    async fn create(&self, target: &LbTarget, spec: &LbSpec, network: &Network) -> Result<LbInfo>;
    /// How an existing load balancer is configured now (a few calls: its health check, attributes, groups).
    async fn config(&self, target: &LbTarget) -> Result<LbSpec>;
    /// Makes an existing load balancer's configuration `spec` (health check, listener port, draining, cross-zone
    /// balancing, security groups), touching only what differs.
    async fn configure(&self, target: &LbTarget, spec: &LbSpec) -> Result<()>;
    /// Registers all instances in one call (`port` is the target port for target groups).
    async fn register(&self, target: &LbTarget, ids: &[crate::model::ids::InstanceId], port: u16) -> Result<()>;
    /// Deregisters all instances in one call.
    async fn deregister(&self, target: &LbTarget, ids: &[crate::model::ids::InstanceId]) -> Result<()>;
    /// The instances registered, without their health (cheaper than `health`), in one call.
    async fn members(&self, target: &LbTarget) -> Result<Vec<crate::model::ids::InstanceId>>;
    /// The health of every registered instance (and, for target groups, of deregistered ones still draining),
    /// in one call. A missing load balancer is not-found.
    async fn health(&self, target: &LbTarget) -> Result<Vec<TargetHealth>>;
    /// The availability zones the load balancer (for a target group: the load balancers forwarding to it) is
    /// enabled in: a target elsewhere takes no traffic. Empty when no load balancer forwards to the group.
    async fn zones(&self, target: &LbTarget) -> Result<std::collections::BTreeSet<String>>;
    /// [`Balancer::members`] and [`Balancer::zones`] together, in as few calls as the API allows: a classic ELB's
    /// description holds both (one call); a target group's arn and the load balancers forwarding to it come in
    /// one `DescribeTargetGroups` (three calls, where the two alone make up to four).
    async fn members_and_zones(&self, target: &LbTarget) -> Result<(Vec<crate::model::ids::InstanceId>, std::collections::BTreeSet<String>)> {
        Ok((self.members(target).await?, self.zones(target).await?))
    }
    /// Which part of `target` is missing, if any (asked when `describe` left it out, to name what was deleted).
    async fn missing_part(&self, target: &LbTarget) -> Result<Option<LbPart>> {
        Ok(self.describe(std::slice::from_ref(target)).await?.is_empty().then(|| LbPart::whole(target)))
    }
}

/// Where traffic may come from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleSource {
    /// An IPv4 block.
    Cidr(String),
    /// Members of a security group (by id).
    Group(String),
}

/// One TCP ingress rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct IngressRule {
    /// The TCP port.
    pub port: u16,
    /// From where.
    pub source: RuleSource,
}

/// A security group as `release` manages it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecurityGroup {
    /// `sg-...`.
    pub id: String,
    /// Its name (unique in its VPC).
    pub name: String,
    /// Its TCP ingress rules.
    pub ingress: Vec<IngressRule>,
}

/// Security groups.
#[async_trait]
pub trait Firewall: Send + Sync {
    /// The groups of `vpc` with these names, in one describe.
    async fn groups(&self, vpc: &str, names: &[String]) -> Result<Vec<SecurityGroup>>;
    /// Creates a group, tagged; returns its id.
    async fn create_group(&self, vpc: &str, name: &str, description: &str, tags: &[(String, String)]) -> Result<String>;
    /// Adds ingress rules.
    async fn authorize(&self, group: &str, rules: &[IngressRule]) -> Result<()>;
    /// Removes ingress rules.
    async fn revoke(&self, group: &str, rules: &[IngressRule]) -> Result<()>;
}

/// A Route53 hosted zone id (without the `/hostedzone/` prefix).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ZoneId(pub String);

/// One weighted alias record of the live name: one per cluster, told apart by `set_identifier` (the cluster name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WeightedAlias {
    /// The live name.
    pub name: String,
    /// The cluster's name.
    pub set_identifier: String,
    /// Its weight.
    pub weight: u8,
    /// The load balancer's DNS name.
    pub target_dns: String,
    /// The load balancer's hosted zone.
    pub target_zone_id: String,
    /// Route53 answers with this record only while its load balancer has healthy targets (with weights: the
    /// others take its share). Release writes `true` on the records it creates and keeps what it reads on the
    /// ones it changes, so an operator's `false` stays (a switch's plan says so).
    pub evaluate_target_health: bool,
}

/// A record of the live name that release does not manage (plain A/CNAME, or an alias without weight).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ForeignRecord {
    /// Its name.
    pub name: String,
    /// `A`, `CNAME`, ...
    pub record_type: String,
}

/// The records of one name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordSet {
    /// Weighted aliases (release's).
    pub weighted: Vec<WeightedAlias>,
    /// Everything else.
    pub foreign: Vec<ForeignRecord>,
}

/// One change of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum RecordChange {
    /// Create or replace the weighted alias with this set identifier.
    Upsert(WeightedAlias),
    /// Delete exactly this weighted alias (all its values must match, as Route53 requires).
    Delete(WeightedAlias),
}

/// A submitted Route53 change batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ChangeId(pub String);

/// Whether a change has reached every Route53 name server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ChangeStatus {
    /// Not yet everywhere.
    Pending,
    /// Everywhere.
    InSync,
}

/// A hosted zone as `find_zone` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Zone {
    /// Its id.
    pub id: ZoneId,
    /// The name servers to delegate to (known for a zone just created; empty when not asked).
    pub name_servers: Vec<String>,
}

/// Route53.
#[async_trait]
pub trait Dns: Send + Sync {
    /// The public hosted zone named exactly `zone`, among all zones of that name (a private zone of the same name
    /// is ignored). Two public zones of that name are an input error naming both.
    async fn find_zone(&self, zone: &str) -> Result<Option<ZoneId>>;
    /// Creates a public hosted zone; returns it with its name servers.
    async fn create_zone(&self, zone: &str) -> Result<Zone>;
    /// The records named exactly `name` (A records: weighted aliases and anything else).
    async fn records(&self, zone: &ZoneId, name: &str) -> Result<RecordSet>;
    /// Submits all changes in ONE change batch; returns at once (the engine waits for it through its clock).
    async fn submit(&self, zone: &ZoneId, changes: &[RecordChange], comment: &str) -> Result<ChangeId>;
    /// Where a submitted change stands.
    async fn change_status(&self, change: &ChangeId) -> Result<ChangeStatus>;
}

/// What a conditional ledger write expects to find.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No record with this key yet (opening a record).
    New,
    /// The record is held by this run (every later write of the run that opened or adopted it).
    Holder(crate::model::ids::ReleaseId),
    /// No condition (closing records of runs known to be dead is done under the lock with `Holder` too; this is
    /// for the environment index).
    Any,
}

/// The DynamoDB table of ledger records, locks and queue tickets.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Whether the table exists.
    async fn table_exists(&self, table: &str) -> Result<bool>;
    /// Creates the table and waits until it is usable.
    async fn create_table(&self, table: &str) -> Result<()>;
    /// Writes a record if `expect` holds; `Ok(false)` when it does not (another run holds the record).
    async fn put_record(&self, table: &str, record: &crate::model::ledger::Record, expect: Expect) -> Result<bool>;
    /// The newest `limit` records of one environment (all when `None`), newest first; strongly consistent and
    /// paginated, so nothing written before the call is missed.
    async fn records(&self, table: &str, app: &crate::model::ids::AppName, env: &crate::model::ids::EnvName, limit: Option<u32>) -> Result<Vec<crate::model::ledger::Record>>;
    /// Notes that `env` of `app` has a ledger (so `history` finds environments no longer in the pipeline file).
    async fn index_env(&self, table: &str, app: &crate::model::ids::AppName, env: &crate::model::ids::EnvName) -> Result<()>;
    /// Every environment of `app` noted by `index_env`.
    async fn indexed_envs(&self, table: &str, app: &crate::model::ids::AppName) -> Result<Vec<crate::model::ids::EnvName>>;
    /// Writes `record` if its holder is `holder` and, in the same transaction, renews `lock` (the renewed lock, as
    /// [`Lock::renew`] writes it) or releases it, if it is still ours: one call where two would do. `Ok(false)` when
    /// either condition fails: then nothing was written, and the caller makes each write alone to learn which.
    async fn put_record_with_lock(
        &self,
        table: &str,
        record: &crate::model::ledger::Record,
        holder: &crate::model::ids::ReleaseId,
        lock: &crate::model::ledger::LockInfo,
        write: LockWrite,
    ) -> Result<bool>;
}

/// What [`Ledger::put_record_with_lock`] does to the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockWrite {
    /// Renews it (a guard before a destructive step).
    Renew,
    /// Releases it (the run is over).
    Release,
}

/// One lock item per app and environment, in the ledger's table.
#[async_trait]
pub trait Lock: Send + Sync {
    /// Takes the lock with a conditional write when it is free, or when it is still exactly the lease `over`
    /// (release id, version and expiry: one the taker watched lapse); otherwise returns the holder. Never compares
    /// times: whether a lease lapsed is the taker's judgement on its own clock (`engine::lock::LeaseWatch`).
    async fn acquire(&self, table: &str, lock: &crate::model::ledger::LockInfo, over: Option<&crate::model::ledger::LockInfo>) -> Result<Option<crate::model::ledger::LockInfo>>;
    /// Extends the lease; false when the lock is no longer ours (broken, or expired and taken).
    async fn renew(&self, table: &str, lock: &crate::model::ledger::LockInfo) -> Result<bool>;
    /// Releases the lock if it is still ours.
    async fn release(&self, table: &str, lock: &crate::model::ledger::LockInfo) -> Result<()>;
    /// The lock as it is now, if held (expired or not).
    async fn holder(&self, table: &str, app: &crate::model::ids::AppName, env: &crate::model::ids::EnvName) -> Result<Option<crate::model::ledger::LockInfo>>;
    /// Removes the lock if it is still the one seen (`seen` = its token), so that a lock renewed or retaken since
    /// it was looked at is not broken by mistake; returns whether it was removed.
    async fn break_lock(&self, table: &str, app: &crate::model::ids::AppName, env: &crate::model::ids::EnvName, seen: &crate::model::ids::ReleaseId) -> Result<bool>;
}

/// The queue of commands waiting for an environment's lock (`--wait`), in the ledger table beside the lock.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Adds a ticket with a conditional write (a ticket is never overwritten).
    async fn enqueue(&self, table: &str, ticket: &crate::model::ledger::Ticket) -> Result<()>;
    /// The environment's tickets in order of arrival, expired and superseded ones included, read consistently.
    async fn tickets(&self, table: &str, app: &crate::model::ids::AppName, env: &crate::model::ids::EnvName) -> Result<Vec<crate::model::ledger::Ticket>>;
    /// Rewrites a ticket that still exists (its renewal); false when it is gone (cancelled).
    async fn update_ticket(&self, table: &str, ticket: &crate::model::ledger::Ticket) -> Result<bool>;
    /// Removes a ticket; false when it was gone already.
    async fn remove_ticket(&self, table: &str, ticket: &crate::model::ledger::Ticket) -> Result<bool>;
}

/// Every cloud port, as the engine needs them together.
#[derive(Clone)]
pub struct Cloud {
    /// AMIs.
    pub images: Arc<dyn Images>,
    /// Instances and the network.
    pub fleet: Arc<dyn Fleet>,
    /// Load balancers.
    pub balancer: Arc<dyn Balancer>,
    /// Route53.
    pub dns: Arc<dyn Dns>,
    /// The ledger.
    pub ledger: Arc<dyn Ledger>,
    /// Locks.
    pub lock: Arc<dyn Lock>,
    /// Queue tickets.
    pub queue: Arc<dyn Queue>,
    /// Security groups.
    pub firewall: Arc<dyn Firewall>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// CloudWatch alarms (watched during rollouts).
    pub alarms: Arc<dyn Alarms>,
    /// EC2 launch templates (asg fleets).
    pub templates: Arc<dyn LaunchTemplates>,
    /// Auto Scaling groups (asg fleets).
    pub groups: Arc<dyn AutoScaling>,
}

/// Tags that `release` writes (DESIGN §4).
pub mod tags {
    /// The app (AMIs, snapshots, instances).
    pub const APP: &str = "release:app";
    /// The full commit sha.
    pub const COMMIT: &str = "release:commit";
    /// The bake key, written last: only an AMI carrying it is a bake.
    pub const BAKE_KEY: &str = "release:bake-key";
    /// The environment (instances).
    pub const ENV: &str = "release:env";
    /// The cluster (instances).
    pub const CLUSTER: &str = "release:cluster";
    /// The release that launched an instance.
    pub const RELEASE_ID: &str = "release:release-id";
    /// Hash of the environment's resolved settings.
    pub const CONFIG: &str = "release:config";
    /// On what `release` made and may change or delete (launch templates).
    pub const MANAGED: &str = "release:managed";
    /// The subject line of the commit an AMI was baked from (for people: status, dashboard, events).
    pub const SUBJECT: &str = "release:subject";
    /// The AMI a snapshot was made for (bakes tag their AMI and its snapshots with it; gc tags an incomplete bake's
    /// before deregistering it). Never on an instance or a volume: the positive marker of a snapshot gc may delete.
    pub const AMI: &str = "release:ami";
    /// Tags only instances (and, copied at launch, their volumes) carry, never a bake: an image or snapshot with one
    /// was made from an instance by something else (a backup tool copying the volume's tags).
    pub const INSTANCE_ONLY: [&str; 4] = [ENV, CLUSTER, RELEASE_ID, CONFIG];
    /// On an Auto Scaling group that a promote disabled (out of the load balancer, instances kept for a rollback):
    /// when, in milliseconds since the epoch, so that its rollback window can be judged.
    pub const DISABLED_AT: &str = "release:disabled-at";
    /// The tag Auto Scaling puts on the instances of a group (its name): such an instance is the group's, not a
    /// bare instance of the cluster.
    pub const GROUP_NAME: &str = "aws:autoscaling:groupName";
}

/// An AMI's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageState {
    /// Being created.
    Pending,
    /// Usable.
    Available,
    /// Failed.
    Failed,
    /// Anything else (deregistered, ...).
    Other,
}

/// An AMI as `release` sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Image {
    /// Its id.
    pub id: crate::model::ids::AmiId,
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: ImageState,
    /// As AWS reports it (ISO 8601).
    pub created: String,
    /// Its tags.
    pub tags: std::collections::BTreeMap<String, String>,
    /// Its EBS snapshots.
    pub snapshots: Vec<String>,
    /// The device name of its root volume (`/dev/xvda`), to size or encrypt it at launch.
    pub root_device: Option<String>,
}

impl Image {
    /// Made by a bake (complete or not), rather than from one of the app's instances by something else (AWS Backup,
    /// a hand-made image) that copied the instance's tags: a bake never carries an instance's tags.
    pub fn is_bake(&self) -> bool {
        !tags::INSTANCE_ONLY.iter().any(|t| self.tags.contains_key(*t))
    }

    /// A bake is complete only when the AMI is available and carries the bake key, which is written last.
    pub fn is_complete_bake(&self) -> bool {
        self.state == ImageState::Available && self.tags.contains_key(tags::BAKE_KEY)
    }
}

/// AMIs.
#[async_trait]
pub trait Images: Send + Sync {
    /// The newest available image matching the name filter and owners, or the given id when it exists.
    async fn resolve_base(&self, base: &crate::model::pipeline::BaseAmi, owners: &[String]) -> Result<crate::model::ids::AmiId>;
    /// Every image of this account tagged with `release:app = app`, in one (paginated) describe.
    async fn app_images(&self, app: &crate::model::ids::AppName) -> Result<Vec<Image>>;
    /// This account's image with exactly this name, if any.
    async fn by_name(&self, name: &str) -> Result<Option<Image>>;
    /// One image by id, if it exists.
    async fn describe(&self, ami: &crate::model::ids::AmiId) -> Result<Option<Image>>;
    /// Tags the image and its snapshots in one call.
    async fn tag(&self, ami: &crate::model::ids::AmiId, snapshots: &[String], tags: &[(String, String)]) -> Result<()>;
    /// Deregisters the image (its snapshots stay until [`Images::delete_snapshot`]).
    async fn deregister(&self, ami: &crate::model::ids::AmiId) -> Result<()>;
    /// Deletes a snapshot; `Cause::InUse` while an image being deregistered still holds it (retry later).
    async fn delete_snapshot(&self, snapshot: &str) -> Result<()>;
    /// Every snapshot of this account tagged `release:app = app` (bakes tag their AMI's snapshots), in one
    /// (paginated) describe: how gc finds the snapshots of an image deregistered by a run that then died.
    async fn app_snapshots(&self, app: &crate::model::ids::AppName) -> Result<Vec<Snapshot>>;
    /// The same port in another region of the account (where bakes copy their AMIs, `[bake] regions`).
    async fn in_region(&self, region: &str) -> Result<Arc<dyn Images>>;
    /// What else uses these images, in one (paginated) call; [`ImageReferences::Unknown`] when the endpoint does not
    /// have the operation (`Cause::UnknownOperation`), any other failure an error.
    async fn references(&self, amis: &[crate::model::ids::AmiId]) -> Result<ImageReferences>;
}

/// An EBS snapshot as gc sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// `snap-...`.
    pub id: String,
    /// Its tags.
    pub tags: std::collections::BTreeMap<String, String>,
    /// Its size in GiB (what it costs).
    pub size_gb: Option<u32>,
}

impl Snapshot {
    /// Made for a bake's AMI: it carries the positive marker, `release:ami` (or, from bakes before that tag,
    /// `release:bake-key`), and none of an instance's tags. A snapshot a backup tool made of a launched volume
    /// (Data Lifecycle Manager's or AWS Backup's tag copy) carries `release:app` too but neither marker.
    pub fn is_of_a_bake(&self) -> bool {
        (self.tags.contains_key(tags::AMI) || self.tags.contains_key(tags::BAKE_KEY))
            && !tags::INSTANCE_ONLY.iter().any(|t| self.tags.contains_key(*t))
    }
}

/// What else in the account uses some images (`DescribeImageReferences`: launch templates, SSM parameters, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageReferences {
    /// Per image that something uses, what uses it (`launch template lt-0abc`); an image not listed is used by nothing.
    Known(std::collections::BTreeMap<crate::model::ids::AmiId, Vec<String>>),
    /// The endpoint does not know the operation (a region or emulator without it): cannot tell. The reason.
    Unknown(String),
}

/// An instance as `release` sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Instance {
    /// Its id.
    pub id: crate::model::ids::InstanceId,
    /// The image it runs.
    pub ami: String,
    /// Its EC2 state.
    pub state: InstanceState,
    /// Its tags.
    pub tags: std::collections::BTreeMap<String, String>,
    /// Its availability zone (empty when not known).
    pub zone: String,
    /// Its subnet (empty when not known).
    #[serde(skip)]
    pub subnet_id: String,
    /// Its VPC (empty when not known).
    #[serde(skip)]
    pub vpc_id: String,
    /// Its security groups, name -> id (empty when not known): a group in use cannot be deleted, so these exist.
    #[serde(skip)]
    pub groups: std::collections::BTreeMap<String, String>,
}

/// An instance's EC2 state (`DescribeInstances` `State.Name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    /// Launched, not running yet.
    Pending,
    /// Running.
    Running,
    /// Being terminated.
    ShuttingDown,
    /// Gone (EC2 lists it for a while).
    Terminated,
    /// Being stopped.
    Stopping,
    /// Stopped.
    Stopped,
}

impl InstanceState {
    /// EC2's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
        }
    }

    /// The state EC2 names `name`; an unknown name is `Pending` (neither serving nor gone).
    pub fn from_ec2(name: &str) -> Self {
        match name {
            "running" => InstanceState::Running,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            _ => InstanceState::Pending,
        }
    }

    /// Terminated or on its way there.
    pub fn is_gone(self) -> bool {
        matches!(self, InstanceState::Terminated | InstanceState::ShuttingDown)
    }
}

impl std::fmt::Display for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for InstanceState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Where the local side of a bake runs: git and the build/test commands.
#[async_trait]
pub trait Workspace: Send + Sync {
    /// A full sha for a commit-ish (short sha, branch, tag); not-found when git does not know it.
    async fn resolve(&self, rev: &str) -> Result<crate::model::ids::CommitSha>;
    /// Exports exactly that commit (never the work tree) into a new temporary directory.
    async fn export(&self, sha: &crate::model::ids::CommitSha) -> Result<Export>;
    /// The commit's subject line.
    async fn subject(&self, sha: &crate::model::ids::CommitSha) -> Result<String>;
    /// Runs a stage's shell command in `dir`, streaming its output; a failure carries the output's tail.
    async fn run_stage(&self, stage: &str, command: &str, dir: &std::path::Path) -> Result<()>;
}

/// A temporary export of one commit; removed on drop.
pub struct Export {
    /// Where the commit was exported.
    pub dir: std::path::PathBuf,
    /// Keeps the directory alive; whatever guard the implementation uses.
    pub guard: Box<dyn Send + Sync>,
}

/// What Packer is given for one bake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BakeRequest {
    /// The template, inside the export.
    pub template: std::path::PathBuf,
    /// Packer's working directory (the export), so relative paths in the template resolve inside the commit.
    pub workdir: std::path::PathBuf,
    /// `-var` values.
    pub vars: std::collections::BTreeMap<String, String>,
    /// Build the emulator source (`communicator = "none"`) instead of the real-AWS one.
    pub emulator: bool,
}

/// A sink for progress lines (stderr on a terminal, log lines otherwise).
pub type ProgressFn = dyn Fn(&str) + Send + Sync;

/// Packer.
#[async_trait]
pub trait Baker: Send + Sync {
    /// The version string that goes into the bake key.
    async fn version(&self) -> Result<String>;
    /// Runs the build and returns the AMI id it reports. `progress` receives one line per Packer step.
    async fn bake(&self, req: &BakeRequest, progress: &ProgressFn) -> Result<crate::model::ids::AmiId>;
}

/// A CloudWatch alarm's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    /// Within its threshold.
    Ok,
    /// Breaching: a rollout watching it goes back.
    Alarm,
    /// Not enough data to decide (a fresh alarm, a metric nobody emits yet): not a breach.
    InsufficientData,
    /// Named by the pipeline but absent from CloudWatch (never returned by the port: `rollout status` shows it).
    #[serde(rename = "missing")]
    Missing,
}

impl AlarmState {
    /// `OK`, `ALARM`, `INSUFFICIENT_DATA`, as CloudWatch names them.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
            AlarmState::Missing => "missing",
        }
    }
}

/// One alarm as DescribeAlarms reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AlarmStatus {
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: AlarmState,
    /// CloudWatch's reason for the state, if any.
    pub reason: Option<String>,
}

/// CloudWatch alarms, read only.
#[async_trait]
pub trait Alarms: Send + Sync {
    /// The states of the named alarms (metric and composite) in ONE DescribeAlarms call (at most 100 names);
    /// a name that does not exist is absent from the answer.
    async fn states(&self, names: &[String]) -> Result<Vec<AlarmStatus>>;
}

/// One hook to run: `sh -c <command>` in `dir` with `vars` added to the environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookCommand {
    /// Which hook point (for messages).
    pub name: crate::model::hook::HookName,
    /// The shell command, as written in the pipeline file.
    pub command: String,
    /// Where it runs: the directory that holds `pipelines/`.
    pub dir: std::path::PathBuf,
    /// The `RELEASE_*` variables.
    pub vars: std::collections::BTreeMap<String, String>,
}

/// How a hook's process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HookExit {
    /// Its exit status, when it exited.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
}

/// Running local commands for lifecycle hooks (the CLI: `sh -c` in a process group of its own; tests: a scripted
/// runner on simulated time). The engine bounds the wait (timeout, signals) through its clock and calls `kill`.
#[async_trait]
pub trait HookRunner: Send + Sync {
    /// Starts the command; each line of its output (stdout and stderr) goes to `output` as it comes.
    async fn start(&self, cmd: &HookCommand, output: Arc<ProgressFn>) -> Result<Box<dyn RunningHook>>;

    /// Whether a hook process of this machine (recorded by a run that may have died) still runs: `Some(false)`
    /// only when provably gone, `None` when this runner cannot tell (the engine then waits out its deadline).
    fn alive(&self, _process: &crate::model::hook::HookProcess) -> Option<bool> {
        None
    }
}

/// A started hook.
#[async_trait]
pub trait RunningHook: Send {
    /// Waits until it ends (with its output read). Cancel-safe: the engine drops this future to look at the clock
    /// and the signals, then calls it again.
    async fn wait(&mut self) -> Result<HookExit>;
    /// Kills it and everything it started (its process group), and reaps it.
    async fn kill(&mut self);
    /// Its process, for the record (so that a re-run can check it); `None` when there is none to check.
    fn process(&self) -> Option<crate::model::hook::HookProcess> {
        None
    }
}

/// A hook runner for programs that run no hooks: a pipeline with hooks is refused, never silently skipped.
pub struct NoHooks;

#[async_trait::async_trait]
impl HookRunner for NoHooks {
    async fn start(&self, cmd: &HookCommand, _output: Arc<ProgressFn>) -> Result<Box<dyn RunningHook>> {
        Err(crate::model::error::Input::NoHookRunner { hook: cmd.name.to_string() }.into())
    }
}

/// Delivers events to sinks: the adapters (HTTP for webhook and slack, SNS, a local command) live outside core.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers `event` to `sink`, once; the caller bounds the time and retries.
    async fn deliver(&self, sink: &crate::model::pipeline::Sink, event: &crate::model::event::Event) -> Result<()>;

    /// Sees every event of an operation once, before (and whatever) the sinks take: a library's subscribers.
    /// Must return at once. Nothing by default.
    fn sent(&self, _event: &crate::model::event::Event) {}
}

/// A notifier for sessions without sinks: delivers nothing.
pub struct NoNotifier;

#[async_trait::async_trait]
impl Notifier for NoNotifier {
    async fn deliver(&self, _sink: &crate::model::pipeline::Sink, _event: &crate::model::event::Event) -> Result<()> {
        Ok(())
    }
}

