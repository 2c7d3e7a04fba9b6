//! The in-memory cloud: every port over one shared state, with simulated time. It exists for what the emulator
//! cannot do (time, faults, slow health, Route53 propagation); the conformance suite holds it to the emulator's
//! behaviour.
//!
//! Time is tokio's paused clock: tests run with `#[tokio::test(start_paused = true)]`, every `sleep` of every task
//! (the operation runner's lock renewal as well as the engine's waits) is served in order of its deadline, and
//! the clock jumps ahead whenever all tasks wait. A ten-minute health timeout takes microseconds, and concurrent
//! tasks interleave as they would in real time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use release_core::model::clock::{Clock, Timestamp};
use release_core::model::error::{Aws as AwsError, Cause, Input, Internal, NotFound};
use release_core::model::ids::{AmiId, AppName, EnvName, InstanceId, ReleaseId};
use release_core::model::ledger::{index_key, partition_key, LockInfo, Record, Ticket};
use release_core::model::pipeline::{BaseAmi, LbTarget};
use release_core::ports::{
    InstanceState,
    tags, Balancer, ChangeId, ChangeStatus, Cloud, Dns, Expect, Firewall, Fleet, HealthState, Image, ImageState, Images, IngressRule,
    Instance, LaunchSpec, LbInfo, LbSpec, Ledger, Lock, LockWrite, Network, Queue, RecordChange, RecordSet, SecurityGroup, Subnet, TargetHealth,
    WeightedAlias, Zone, ZoneId,
};
use release_core::{Error, Result};

/// Simulated time on tokio's paused clock, plus jumps (`advance`) that move "now" without waking anyone, as a
/// machine that was asleep would see it.
#[derive(Clone, Debug)]
pub struct SimClock {
    base: Timestamp,
    start: tokio::time::Instant,
    jumped: Arc<Mutex<Duration>>,
}

impl SimClock {
    /// A clock reading `start` now.
    pub fn new(start: Timestamp) -> Self {
        Self { base: start, start: tokio::time::Instant::now(), jumped: Arc::new(Mutex::new(Duration::ZERO)) }
    }

    /// Moves "now" forward at once (sleepers are not woken early: they wait their own durations).
    pub fn advance(&self, d: Duration) {
        *self.jumped.lock().unwrap() += d;
    }

    /// The same time seen by a machine whose clock is `ahead_ms` off (negative: behind): it ticks with this one.
    pub fn skewed(&self, ahead_ms: i64) -> SimClock {
        Self { base: Timestamp::from_millis(self.base.millis() + ahead_ms), ..self.clone() }
    }
}

#[async_trait]
impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        // Every reading moves time on by a millisecond, as real calls take time: records opened one after the
        // other never share a start time (they sort by it).
        let mut jumped = self.jumped.lock().unwrap();
        *jumped += Duration::from_millis(1);
        self.base.add(tokio::time::Instant::now().duration_since(self.start) + *jumped)
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// Everything the in-memory cloud holds.
#[derive(Debug, Default)]
pub struct State {
    /// The default VPC.
    pub vpc_id: String,
    /// Its subnets.
    pub subnets: Vec<Subnet>,
    /// Load balancers with what they were created with.
    pub load_balancers: BTreeMap<LbTarget, (LbInfo, LbSpec)>,
    /// zone name (lowercase, trailing dot) → (id, records by (name, set identifier)).
    pub zones: BTreeMap<String, (ZoneId, BTreeMap<(String, String), WeightedAlias>)>,
    /// Records release does not manage: (zone, name, type).
    pub foreign: Vec<(ZoneId, String, String)>,
    /// Route53 changes: id → when it is in sync.
    pub changes: BTreeMap<String, Timestamp>,
    /// How long a Route53 change takes to be INSYNC.
    pub insync_after: Duration,
    /// DynamoDB tables.
    pub tables: Vec<String>,
    /// Images by id, with their owner (`amazon` for base images, `self` for ours).
    pub images: BTreeMap<AmiId, (String, Image)>,
    /// Every instance ever launched.
    pub instances: Vec<Instance>,
    /// User data by instance.
    pub user_data: BTreeMap<InstanceId, String>,
    /// Calls made, by port operation name, to prove that call counts do not grow with the fleet.
    pub calls: BTreeMap<&'static str, u64>,
    /// Scripted faults by operation: `n > 0` fails the next n calls, `-1` fails every call.
    pub faults: BTreeMap<&'static str, i64>,
    /// Scripted faults by operation: let this many calls through, then fail the next one.
    pub fail_after: BTreeMap<&'static str, u64>,
    /// The zones each load balancer is enabled in (those of the subnets it was created in).
    pub lb_zones: BTreeMap<LbTarget, std::collections::BTreeSet<String>>,
    /// Registered instances per load balancer, with the time each was registered.
    pub registered: BTreeMap<LbTarget, BTreeMap<InstanceId, Timestamp>>,
    /// How long after registration an instance turns healthy; `None`: never.
    pub healthy_after: Option<Duration>,
    /// Instances that never turn healthy.
    pub sick: Vec<InstanceId>,
    /// Deregistered targets of target groups, draining until the time given.
    pub draining: BTreeMap<LbTarget, BTreeMap<InstanceId, Timestamp>>,
    /// Every launch, as asked (to check what was launched with).
    pub launches: Vec<LaunchSpec>,
    /// When each instance was launched (for eventual consistency).
    pub launched_at: BTreeMap<InstanceId, Timestamp>,
    /// Realism: how long a fresh instance id is unknown to EC2 (`InvalidInstanceID.NotFound`).
    pub not_visible_for: Duration,
    /// Realism: how long the load balancers do not know a fresh id (`InvalidTarget`: "does not exist").
    pub elb_unknown_for: Duration,
    /// Realism: how long after its launch the load balancers do not see an instance running, whatever EC2 says
    /// (`InvalidTarget`: "not in a running state").
    pub elb_not_running_for: Duration,
    /// Realism: zones out of capacity (`InsufficientInstanceCapacity`).
    pub capacity_out: std::collections::BTreeSet<String>,
    /// Realism: (zone, instance type) not offered (`Unsupported`).
    pub not_offered: std::collections::BTreeSet<(String, String)>,
    /// Realism: (zone, instance type) that DescribeInstanceTypeOfferings lists but RunInstances refuses (`Unsupported`).
    pub refused_at_launch: std::collections::BTreeSet<(String, String)>,
    /// Snapshots that exist.
    pub snapshots: std::collections::BTreeSet<String>,
    /// Snapshots EC2 still reports in use (by an image being deregistered), for so many more delete attempts.
    pub snapshot_busy: BTreeMap<String, u32>,
    /// Security groups by id: (vpc, group).
    pub groups: BTreeMap<String, (String, SecurityGroup)>,
    /// Ledger items: table → (pk, sk) → record.
    pub ledger: BTreeMap<String, BTreeMap<(String, String), Record>>,
    /// Environment index: table → (pk, env).
    pub index: BTreeMap<String, std::collections::BTreeSet<(String, String)>>,
    /// Locks: table → pk → lock.
    pub locks: BTreeMap<String, BTreeMap<String, LockInfo>>,
    /// Queue tickets: table → (pk, sk) → ticket.
    pub tickets: BTreeMap<String, BTreeMap<(String, String), Ticket>>,
    /// CloudWatch alarms by name: their state, and scripted changes (when, state) applied once their time comes.
    pub alarms: BTreeMap<String, (release_core::ports::AlarmState, Vec<(Timestamp, release_core::ports::AlarmState)>)>,
    /// Tags of snapshots (bakes tag the snapshots of their AMI with it): snapshot -> tags.
    pub snapshot_tags: BTreeMap<String, BTreeMap<String, String>>,
    /// What else uses an image (launch templates, SSM parameters), as DescribeImageReferences answers.
    pub image_references: BTreeMap<AmiId, Vec<String>>,
    /// Script a region without DescribeImageReferences (`UnsupportedOperation`).
    pub references_unknown: bool,
    /// Lock renewals that fail (a throttled or unreachable DynamoDB, for the holder alone): `n > 0` the next n,
    /// `-1` every one.
    pub renewal_faults: i64,
    /// Launch templates and Auto Scaling groups (`crate::scaling`).
    pub scaling: crate::scaling::Scaling,
    /// RunInstances client tokens seen: token -> (the call's other arguments, the instances it launched).
    pub tokens: BTreeMap<String, (String, Vec<InstanceId>)>,
    /// When each terminated instance was terminated (a client token is remembered until 24 h after that).
    pub terminated_at: BTreeMap<InstanceId, Timestamp>,
    next_id: u64,
}

impl State {
    pub(crate) fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:012x}", self.next_id)
    }
}

/// Every port over one shared [`State`].
#[derive(Clone)]
pub struct MemoryCloud {
    state: Arc<Mutex<State>>,
    /// Simulated time.
    pub clock: SimClock,
    region: String,
    /// The account's other regions (bake copies), made on first use, shared by every clone.
    regions: Arc<Mutex<BTreeMap<String, MemoryCloud>>>,
}

impl Default for MemoryCloud {
    fn default() -> Self {
        Self::new()
    }
}

/// How long EC2 remembers a client token after the last of its instances was terminated.
pub const TOKEN_KEPT: Duration = Duration::from_secs(24 * 3600);

/// A RunInstances call's arguments but its token, as EC2 compares them for a token it saw before.
fn arguments(spec: &LaunchSpec) -> String {
    let mut args = spec.clone();
    args.client_token.clear();
    serde_json::to_string(&args).unwrap_or_default()
}

/// What an AWS call answers with an error code, as the adapter's boundary makes it.
pub(crate) fn call_error(operation: &str, code: &str, message: impl Into<String>) -> Error {
    AwsError::Call { operation: operation.to_owned(), code: code.to_owned(), message: message.into(), missing: false }.into()
}

/// A call whose code says the named resource does not exist (exit 3).
pub(crate) fn missing(operation: &str, code: &str, message: impl Into<String>) -> Error {
    Error::from(AwsError::Call { operation: operation.to_owned(), code: code.to_owned(), message: message.into(), missing: true }).with_cause(Cause::Missing)
}

impl MemoryCloud {
    /// A region with a default VPC of three subnets in three zones, like a fresh AWS account.
    pub fn new() -> Self {
        let mut state = State::default();
        state.vpc_id = state.id("vpc-");
        for az in ["us-east-1a", "us-east-1b", "us-east-1c"] {
            let id = state.id("subnet-");
            state.subnets.push(Subnet { id, availability_zone: az.to_owned() });
        }
        let base = AmiId::parse("ami-0a1b2c3d4e5f60718").expect("valid id");
        state.images.insert(
            base.clone(),
            (
                "amazon".into(),
                Image {
                    id: base,
                    name: "al2023-ami-2023.12.20260930.0-kernel-6.1-x86_64".into(),
                    state: ImageState::Available,
                    created: "2026-10-01T00:00:00.000Z".into(),
                    tags: BTreeMap::new(),
                    snapshots: vec!["snap-0base".into()],
                    root_device: Some("/dev/xvda".into()),
                },
            ),
        );
        state.healthy_after = Some(Duration::ZERO);
        Self {
            state: Arc::new(Mutex::new(state)),
            clock: SimClock::new(Timestamp::from_millis(1_795_146_590_000)),
            region: "us-east-1".into(),
            regions: Default::default(),
        }
    }

    /// Another region of the same account: its own state (a fresh default VPC and the base image), the same clock.
    pub fn other_region(&self, region: &str) -> MemoryCloud {
        if region == self.region {
            return self.clone();
        }
        let mut all = self.regions.lock().unwrap();
        all.entry(region.to_owned())
            .or_insert_with(|| {
                let mut r = MemoryCloud::new();
                r.clock = self.clock.clone();
                r.region = region.to_owned();
                r.regions = self.regions.clone();
                r
            })
            .clone()
    }

    /// The state, to look at or script.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub(crate) fn call(&self, op: &'static str) -> Result<MutexGuard<'_, State>> {
        let mut s = self.state();
        *s.calls.entry(op).or_default() += 1;
        if let Some(n) = s.fail_after.get_mut(op) {
            if *n == 0 {
                s.fail_after.remove(op);
                return Err(call_error(op, "InternalError", "injected fault"));
            }
            *n -= 1;
        }
        match s.faults.get(op).copied() {
            Some(-1) => return Err(call_error(op, "InternalError", "injected fault")),
            Some(n) if n > 0 => {
                s.faults.insert(op, n - 1);
                return Err(call_error(op, "InternalError", "injected fault"));
            }
            _ => {}
        }
        Ok(s)
    }

    /// EC2's eventual consistency: ids launched less than `not_visible_for` ago are unknown.
    fn visible(&self, s: &State, ids: &[InstanceId], op: &str) -> Result<()> {
        let now = self.clock.now();
        if let Some(id) = ids.iter().find(|id| s.launched_at.get(*id).is_some_and(|t| now.since(*t) < s.not_visible_for)) {
            return Err(call_error(op, "InvalidInstanceID.NotFound", format!("The instance ID '{id}' does not exist"))
                .with_cause(Cause::NotYetVisible)
                .with_code("InvalidInstanceID.NotFound"));
        }
        Ok(())
    }

    /// EC2's client tokens: a token seen before with the same arguments answers with the instances it launched then
    /// (nothing new), with other arguments `IdempotentParameterMismatch`. A token is remembered until every one of
    /// its instances has been terminated for [`TOKEN_KEPT`] (AWS: "at least 24 hours after the termination").
    fn replay(&self, s: &mut State, spec: &LaunchSpec) -> Result<Option<Vec<InstanceId>>> {
        let Some((args, ids)) = s.tokens.get(&spec.client_token).cloned() else { return Ok(None) };
        let now = self.clock.now();
        let expired = ids.iter().all(|id| s.terminated_at.get(id).is_some_and(|t| now.since(*t) >= TOKEN_KEPT));
        if expired {
            s.tokens.remove(&spec.client_token);
            return Ok(None);
        }
        if args != arguments(spec) {
            return Err(call_error(
                "ec2 RunInstances",
                "IdempotentParameterMismatch",
                "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
            )
            .with_code("IdempotentParameterMismatch"));
        }
        Ok(Some(ids))
    }

    /// What the load balancers answer a registration of ids they do not know yet, or do not see running (not running
    /// in EC2, or launched moments ago: their view lags EC2's), as ELBv2 words it.
    fn registrable(&self, s: &State, ids: &[InstanceId]) -> Result<()> {
        let now = self.clock.now();
        let young = |id: &InstanceId, d: Duration| s.launched_at.get(id).is_some_and(|t| now.since(*t) < d);
        if ids.iter().any(|id| young(id, s.elb_unknown_for)) {
            let msg = "The specified target does not exist, is not in the same VPC as the target group, or has an unsupported instance type.";
            return Err(call_error("elb:Register", "InvalidTarget", msg).with_cause(Cause::NotYetVisible).with_code("InvalidTarget"));
        }
        let running = |id: &InstanceId| s.instances.iter().any(|i| &i.id == id && i.state == InstanceState::Running);
        let idle: Vec<&str> = ids.iter().filter(|id| !running(id) || young(id, s.elb_not_running_for)).map(|id| id.as_str()).collect();
        if !idle.is_empty() {
            let msg = format!("The following targets are not in a running state and cannot be registered: '{}'", idle.join(", "));
            return Err(call_error("elb:Register", "InvalidTarget", msg).with_cause(Cause::NotRunning).with_code("InvalidTarget"));
        }
        Ok(())
    }

    /// Makes the next `n` calls of `op` fail (`-1`: every call).
    pub fn fail(&self, op: &'static str, n: i64) {
        self.state().faults.insert(op, n);
    }

    /// Live (not terminated) instances.
    pub fn live_instances(&self) -> Vec<Instance> {
        self.state().instances.iter().filter(|i| i.state != "terminated").cloned().collect()
    }

    /// Who is registered with a load balancer.
    pub fn registered(&self, target: &LbTarget) -> Vec<InstanceId> {
        self.state().registered.get(target).map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    /// Every port of this cloud.
    pub fn cloud(&self) -> Cloud {
        let me = Arc::new(self.clone());
        Cloud {
            images: me.clone(),
            fleet: me.clone(),
            balancer: me.clone(),
            dns: me.clone(),
            ledger: me.clone(),
            firewall: me.clone(),
            queue: me.clone(),
            alarms: me.clone(),
            templates: me.clone(),
            groups: me.clone(),
            lock: me,
            clock: Arc::new(self.clock.clone()),
        }
    }

    /// Writes a record release does not manage (a plain CNAME).
    pub fn plant_cname(&self, zone: &ZoneId, name: &str) {
        self.state().foreign.push((zone.clone(), normalize(name), "CNAME".into()));
    }

    /// Registers an image of ours, as Packer would leave it (no release tags).
    pub fn register_image(&self, name: &str, state: ImageState) -> AmiId {
        let mut s = self.state();
        let id = AmiId::parse(&s.id("ami-")).expect("valid id");
        let created = self.clock.now().to_string();
        let snapshot = s.id("snap-");
        s.images.insert(
            id.clone(),
            ("self".into(), Image { id: id.clone(), name: name.into(), state, created, tags: BTreeMap::new(), snapshots: vec![snapshot.clone()], root_device: Some("/dev/xvda".into()) }),
        );
        s.snapshots.insert(snapshot);
        id
    }
}

fn normalize(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n.ends_with('.') {
        n
    } else {
        format!("{n}.")
    }
}

#[async_trait]
impl Fleet for MemoryCloud {
    async fn network(&self, subnets: &[String]) -> Result<Network> {
        let s = self.call("ec2:DescribeSubnets")?;
        let found: Vec<Subnet> = if subnets.is_empty() {
            s.subnets.clone()
        } else {
            let mut out = Vec::new();
            for id in subnets {
                match s.subnets.iter().find(|x| &x.id == id) {
                    Some(x) => out.push(x.clone()),
                    None => return Err(missing("ec2 DescribeSubnets", "InvalidSubnetID.NotFound", format!("the subnet ID '{id}' does not exist"))),
                }
            }
            out
        };
        Ok(Network { vpc_id: s.vpc_id.clone(), subnets: found })
    }

    async fn app_instances(&self, app: &AppName) -> Result<Vec<Instance>> {
        let mut s = self.call("ec2:DescribeInstances")?;
        crate::scaling::settle(&mut s, self.clock.now());
        Ok(s.instances.iter().filter(|i| i.state != "terminated" && i.tags.get(tags::APP).map(String::as_str) == Some(app.as_str())).cloned().collect())
    }

    async fn instances_in(&self, ids: &[InstanceId], states: &[&str]) -> Result<Vec<Instance>> {
        let mut s = self.call("ec2:DescribeInstances")?;
        crate::scaling::settle(&mut s, self.clock.now());
        self.visible(&s, ids, "ec2:DescribeInstances")?;
        Ok(s.instances.iter().filter(|i| ids.contains(&i.id) && states.contains(&i.state.as_str())).cloned().collect())
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<Vec<InstanceId>> {
        let mut s = self.call("ec2:RunInstances")?;
        if let Some(ids) = self.replay(&mut s, spec)? {
            return Ok(ids);
        }
        if !s.images.contains_key(&spec.ami) {
            return Err(missing("ec2 RunInstances", "InvalidAMIID.NotFound", spec.ami.to_string()));
        }
        if !s.subnets.iter().any(|x| x.id == spec.subnet) {
            return Err(missing("ec2 RunInstances", "InvalidSubnetID.NotFound", spec.subnet.clone()));
        }
        let zone = s.subnets.iter().find(|x| x.id == spec.subnet).map(|x| x.availability_zone.clone()).unwrap_or_default();
        let key = (zone.clone(), spec.instance_type.clone());
        if s.not_offered.contains(&key) || s.refused_at_launch.contains(&key) {
            return Err(call_error(
                "ec2 RunInstances",
                "Unsupported",
                format!("Your requested instance type ({}) is not supported in your requested Availability Zone ({zone}).", spec.instance_type),
            )
            .with_cause(Cause::Unsupported)
            .with_code("Unsupported"));
        }
        if s.capacity_out.contains(&zone) {
            return Err(call_error(
                "ec2 RunInstances",
                "InsufficientInstanceCapacity",
                format!("We currently do not have sufficient {} capacity in the Availability Zone you requested ({zone}).", spec.instance_type),
            )
            .with_cause(Cause::Capacity)
            .with_code("InsufficientInstanceCapacity"));
        }
        for g in &spec.security_groups {
            if !s.groups.contains_key(g) {
                return Err(missing("ec2 RunInstances", "InvalidGroup.NotFound", format!("The security group '{g}' does not exist")));
            }
        }
        let now = self.clock.now();
        let mut ids = Vec::new();
        for _ in 0..spec.count {
            let id = InstanceId::parse(&s.id("i-")).expect("valid id");
            let tags = spec.tags.iter().cloned().collect();
            let groups = spec.security_groups.iter().filter_map(|g| s.groups.get(g)).map(|(_, g)| (g.name.clone(), g.id.clone())).collect();
            let vpc_id = s.vpc_id.clone();
            s.instances.push(Instance { id: id.clone(), ami: spec.ami.to_string(), state: InstanceState::Running, tags, zone: zone.clone(), subnet_id: spec.subnet.clone(), vpc_id, groups });
            s.user_data.insert(id.clone(), spec.user_data.clone());
            s.launched_at.insert(id.clone(), now);
            ids.push(id);
        }
        s.launches.push(spec.clone());
        if !spec.client_token.is_empty() {
            s.tokens.insert(spec.client_token.clone(), (arguments(spec), ids.clone()));
        }
        Ok(ids)
    }

    async fn offered_zones(&self, instance_type: &str) -> Result<std::collections::BTreeSet<String>> {
        let s = self.call("ec2:DescribeInstanceTypeOfferings")?;
        // The families this region knows; a made-up type is offered nowhere, as in EC2.
        let known = ["t2.", "t3.", "t3a.", "m5.", "m6i.", "m7i.", "c5.", "c6i.", "c7i.", "r5.", "r6i."];
        if !known.iter().any(|f| instance_type.starts_with(f)) {
            return Ok(Default::default());
        }
        Ok(s.subnets.iter().map(|x| x.availability_zone.clone()).filter(|z| !s.not_offered.contains(&(z.clone(), instance_type.to_owned()))).collect())
    }

    async fn terminate(&self, ids: &[InstanceId]) -> Result<()> {
        let mut s = self.call("ec2:TerminateInstances")?;
        self.visible(&s, ids, "ec2:TerminateInstances")?;
        let now = self.clock.now();
        let mut gone = Vec::new();
        for i in s.instances.iter_mut().filter(|i| ids.contains(&i.id) && i.state != InstanceState::Terminated) {
            i.state = InstanceState::Terminated;
            gone.push(i.id.clone());
        }
        s.terminated_at.extend(gone.into_iter().map(|id| (id, now)));
        // AWS removes terminated instances from their load balancers.
        for members in s.registered.values_mut() {
            members.retain(|id, _| !ids.contains(id));
        }
        Ok(())
    }

    async fn in_region(&self, region: &str) -> Result<Arc<dyn Fleet>> {
        Ok(Arc::new(self.other_region(region)))
    }
}

/// `*` matches any run of characters, as EC2's name filter does.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => text.starts_with(head) && (0..=text.len() - head.len()).any(|i| glob(rest, &text[head.len() + i..])),
    }
}

#[async_trait]
impl Images for MemoryCloud {
    async fn resolve_base(&self, base: &BaseAmi, owners: &[String]) -> Result<AmiId> {
        let s = self.call("ec2:DescribeImages")?;
        match base {
            BaseAmi::Id(id) => s
                .images
                .contains_key(id)
                .then(|| id.clone())
                .ok_or_else(|| Error::from(NotFound::BaseAmi { id: id.to_string(), region: self.region.clone() }).with_cause(Cause::Missing)),
            BaseAmi::NameFilter(f) => s
                .images
                .values()
                .filter(|(owner, i)| owners.contains(owner) && glob(f, &i.name) && i.state == ImageState::Available)
                .max_by(|a, b| a.1.created.cmp(&b.1.created))
                .map(|(_, i)| i.id.clone())
                .ok_or_else(|| {
                    Error::from(NotFound::BaseAmiNamed { filter: f.clone(), owners: owners.to_vec(), region: self.region.clone() }).with_cause(Cause::Missing)
                }),
        }
    }

    async fn app_images(&self, app: &AppName) -> Result<Vec<Image>> {
        let s = self.call("ec2:DescribeImages")?;
        Ok(s.images.values().filter(|(owner, i)| owner == "self" && i.tags.get(tags::APP).map(String::as_str) == Some(app.as_str())).map(|(_, i)| i.clone()).collect())
    }

    async fn by_name(&self, name: &str) -> Result<Option<Image>> {
        let s = self.call("ec2:DescribeImages")?;
        Ok(s.images.values().find(|(owner, i)| owner == "self" && i.name == name).map(|(_, i)| i.clone()))
    }

    async fn describe(&self, ami: &AmiId) -> Result<Option<Image>> {
        Ok(self.call("ec2:DescribeImages")?.images.get(ami).map(|(_, i)| i.clone()))
    }

    async fn tag(&self, ami: &AmiId, snapshots: &[String], new_tags: &[(String, String)]) -> Result<()> {
        let mut s = self.call("ec2:CreateTags")?;
        let (_, image) = s.images.get_mut(ami).ok_or_else(|| missing("ec2 CreateTags", "InvalidAMIID.NotFound", ami.to_string()))?;
        image.tags.extend(new_tags.iter().cloned());
        for snap in snapshots {
            s.snapshot_tags.entry(snap.clone()).or_default().extend(new_tags.iter().cloned());
        }
        Ok(())
    }

    async fn deregister(&self, ami: &AmiId) -> Result<()> {
        let mut s = self.call("ec2:DeregisterImage")?;
        s.images.remove(ami).map(|_| ()).ok_or_else(|| missing("ec2 DeregisterImage", "InvalidAMIID.NotFound", ami.to_string()))
    }

    async fn delete_snapshot(&self, snapshot: &str) -> Result<()> {
        let mut s = self.call("ec2:DeleteSnapshot")?;
        if let Some(n) = s.snapshot_busy.get_mut(snapshot).filter(|n| **n > 0) {
            *n -= 1;
            return Err(call_error("ec2 DeleteSnapshot", "InvalidSnapshot.InUse", format!("The snapshot {snapshot} is currently in use"))
                .with_cause(Cause::InUse)
                .with_code("InvalidSnapshot.InUse"));
        }
        if !s.snapshots.remove(snapshot) {
            return Err(missing("ec2 DeleteSnapshot", "InvalidSnapshot.NotFound", snapshot.to_string()));
        }
        s.snapshot_tags.remove(snapshot);
        Ok(())
    }

    async fn in_region(&self, region: &str) -> Result<Arc<dyn Images>> {
        Ok(Arc::new(self.other_region(region)))
    }

    async fn references(&self, amis: &[AmiId]) -> Result<release_core::ports::ImageReferences> {
        let s = self.call("ec2:DescribeImageReferences")?;
        if s.references_unknown {
            return Ok(release_core::ports::ImageReferences::Unknown("ec2 DescribeImageReferences: UnsupportedOperation".into()));
        }
        Ok(release_core::ports::ImageReferences::Known(
            s.image_references.iter().filter(|(a, r)| amis.contains(*a) && !r.is_empty()).map(|(a, r)| (a.clone(), r.clone())).collect(),
        ))
    }

    async fn app_snapshots(&self, app: &AppName) -> Result<Vec<release_core::ports::Snapshot>> {
        let s = self.call("ec2:DescribeSnapshots")?;
        Ok(s.snapshots
            .iter()
            .filter_map(|id| {
                let tags = s.snapshot_tags.get(id)?;
                (tags.get(tags::APP).map(String::as_str) == Some(app.as_str())).then(|| release_core::ports::Snapshot { id: id.clone(), tags: tags.clone(), size_gb: Some(8) })
            })
            .collect())
    }
}

fn lb_missing(target: &LbTarget) -> Error {
    Error::from(NotFound::LbTarget { target: target.to_string() }).with_cause(Cause::Missing)
}

#[async_trait]
impl Balancer for MemoryCloud {
    async fn describe(&self, targets: &[LbTarget]) -> Result<Vec<LbInfo>> {
        let s = self.call("elb:Describe")?;
        Ok(s.load_balancers.values().filter(|(i, _)| targets.contains(&i.target)).map(|(i, _)| i.clone()).collect())
    }

    async fn create(&self, target: &LbTarget, spec: &LbSpec, network: &Network) -> Result<LbInfo> {
        let mut s = self.call("elb:Create")?;
        if network.subnets.is_empty() {
            return Err(call_error("elb CreateLoadBalancer", "ValidationError", "no subnets given"));
        }
        let region = self.region.clone();
        let mut zones = std::collections::BTreeSet::new();
        for sub in &network.subnets {
            if !zones.insert(sub.availability_zone.clone()) {
                let msg = format!("You cannot specify multiple subnets in the same Availability Zone ({})", sub.availability_zone);
                return Err(call_error("elb CreateLoadBalancer", "InvalidConfigurationRequest", msg));
            }
        }
        s.lb_zones.entry(target.clone()).or_insert(zones);
        let info = s
            .load_balancers
            .entry(target.clone())
            .or_insert_with(|| {
                let info = LbInfo {
                    target: target.clone(),
                    dns_name: format!("{}-1234567890.{region}.elb.amazonaws.com", target.name()),
                    hosted_zone_id: "Z35SXDOTRQ7X7K".into(),
                };
                (info, spec.clone())
            })
            .0
            .clone();
        Ok(info)
    }

    async fn config(&self, target: &LbTarget) -> Result<LbSpec> {
        let s = self.call("elb:DescribeConfig")?;
        s.load_balancers.get(target).map(|(_, spec)| spec.clone()).ok_or_else(|| lb_missing(target))
    }

    async fn configure(&self, target: &LbTarget, spec: &LbSpec) -> Result<()> {
        let mut s = self.call("elb:Configure")?;
        let (_, have) = s.load_balancers.get_mut(target).ok_or_else(|| lb_missing(target))?;
        *have = spec.clone();
        Ok(())
    }

    async fn register(&self, target: &LbTarget, ids: &[InstanceId], _port: u16) -> Result<()> {
        let mut s = self.call("elb:Register")?;
        if !s.load_balancers.contains_key(target) {
            return Err(lb_missing(target));
        }
        self.visible(&s, ids, "elb:Register")?;
        self.registrable(&s, ids)?;
        let now = self.clock.now();
        let members = s.registered.entry(target.clone()).or_default();
        for id in ids {
            members.entry(id.clone()).or_insert(now);
        }
        Ok(())
    }

    async fn deregister(&self, target: &LbTarget, ids: &[InstanceId]) -> Result<()> {
        let mut s = self.call("elb:Deregister")?;
        if !s.load_balancers.contains_key(target) {
            return Err(lb_missing(target));
        }
        if let Some(members) = s.registered.get_mut(target) {
            members.retain(|id, _| !ids.contains(id));
        }
        // Target groups keep deregistered targets `draining` for their deregistration delay.
        if matches!(target, LbTarget::TargetGroup(_)) {
            let until = self.clock.now().add(s.load_balancers[target].1.drain);
            let draining = s.draining.entry(target.clone()).or_default();
            for id in ids {
                draining.insert(id.clone(), until);
            }
        }
        Ok(())
    }

    async fn zones(&self, target: &LbTarget) -> Result<std::collections::BTreeSet<String>> {
        let s = self.call("elb:DescribeLoadBalancers")?;
        if !s.load_balancers.contains_key(target) {
            return Err(lb_missing(target));
        }
        Ok(s.lb_zones.get(target).cloned().unwrap_or_default())
    }

    async fn members_and_zones(&self, target: &LbTarget) -> Result<(Vec<InstanceId>, std::collections::BTreeSet<String>)> {
        // As ELB: a classic ELB's one description holds both; a target group's take more calls.
        if let LbTarget::TargetGroup(_) = target {
            return Ok((self.members(target).await?, self.zones(target).await?));
        }
        let members = self.members(target).await?;
        Ok((members, self.state().lb_zones.get(target).cloned().unwrap_or_default()))
    }

    async fn members(&self, target: &LbTarget) -> Result<Vec<InstanceId>> {
        let mut s = self.call("elb:DescribeLoadBalancers")?;
        crate::scaling::settle(&mut s, self.clock.now());
        if !s.load_balancers.contains_key(target) {
            return Err(lb_missing(target));
        }
        Ok(s.registered.get(target).map(|m| m.keys().cloned().collect()).unwrap_or_default())
    }

    async fn health(&self, target: &LbTarget) -> Result<Vec<TargetHealth>> {
        let mut s = self.call("elb:DescribeHealth")?;
        crate::scaling::settle(&mut s, self.clock.now());
        if !s.load_balancers.contains_key(target) {
            return Err(lb_missing(target));
        }
        let now = self.clock.now();
        let running: std::collections::BTreeSet<&InstanceId> = s.instances.iter().filter(|i| i.state == "running").map(|i| &i.id).collect();
        // A target in a zone the load balancer is not enabled in never takes traffic.
        let served = s.lb_zones.get(target);
        let outside = |id: &InstanceId| {
            let zone = s.instances.iter().find(|i| &i.id == id).map(|i| i.zone.as_str()).filter(|z| !z.is_empty())?;
            if served.is_none_or(|z| z.contains(zone)) {
                return None;
            }
            Some(match target {
                LbTarget::TargetGroup(_) => TargetHealth { id: id.clone(), state: HealthState::Unused, reason: Some("Target.NotInUse".into()) },
                LbTarget::ClassicElb(_) => TargetHealth {
                    id: id.clone(),
                    state: HealthState::Unhealthy,
                    reason: Some("Instance is in an EC2 Availability Zone for which LoadBalancer is not configured to route traffic to.".into()),
                },
            })
        };
        let draining = s
            .draining
            .get(target)
            .map(|d| d.iter().filter(|(_, until)| **until > now).map(|(id, _)| TargetHealth { id: id.clone(), state: HealthState::Draining, reason: Some("Target.DeregistrationInProgress".into()) }).collect::<Vec<_>>())
            .unwrap_or_default();
        Ok(s.registered
            .get(target)
            .map(|m| {
                m.iter()
                    .map(|(id, since)| {
                        if let Some(reason) = outside(id) {
                            return reason;
                        }
                        let healthy = running.contains(id) && !s.sick.contains(id) && s.healthy_after.is_some_and(|d| now.since(*since) >= d);
                        let state = if healthy {
                            HealthState::Healthy
                        } else if running.contains(id) {
                            HealthState::Initial
                        } else {
                            HealthState::Unhealthy
                        };
                        TargetHealth { id: id.clone(), state, reason: None }
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .chain(draining)
            .collect())
    }
}

#[async_trait]
impl Dns for MemoryCloud {
    async fn find_zone(&self, zone: &str) -> Result<Option<ZoneId>> {
        let s = self.call("route53:ListHostedZonesByName")?;
        Ok(s.zones.get(&normalize(zone)).map(|(id, _)| id.clone()))
    }

    async fn create_zone(&self, zone: &str) -> Result<Zone> {
        let mut s = self.call("route53:CreateHostedZone")?;
        let id = ZoneId(s.id("Z").to_ascii_uppercase());
        s.zones.entry(normalize(zone)).or_insert_with(|| (id, BTreeMap::new()));
        let id = s.zones[&normalize(zone)].0.clone();
        Ok(Zone { id, name_servers: vec!["ns-1.awsdns-00.com".into(), "ns-2.awsdns-00.net".into()] })
    }

    async fn records(&self, zone: &ZoneId, name: &str) -> Result<RecordSet> {
        let s = self.call("route53:ListResourceRecordSets")?;
        let want = normalize(name);
        let (_, records) =
            s.zones.values().find(|(id, _)| id == zone).ok_or_else(|| missing("route53 ListResourceRecordSets", "NoSuchHostedZone", zone.0.clone()))?;
        let weighted = records.values().filter(|r| r.name == want).cloned().collect();
        let foreign = s
            .foreign
            .iter()
            .filter(|(z, n, _)| z == zone && *n == want)
            .map(|(_, n, t)| release_core::ports::ForeignRecord { name: n.clone(), record_type: t.clone() })
            .collect();
        Ok(RecordSet { weighted, foreign })
    }

    async fn submit(&self, zone: &ZoneId, changes: &[RecordChange], _comment: &str) -> Result<ChangeId> {
        let mut s = self.call("route53:ChangeResourceRecordSets")?;
        let insync = self.clock.now().add(s.insync_after);
        let id = s.id("C").to_ascii_uppercase();
        let (_, records) = s
            .zones
            .values_mut()
            .find(|(id, _)| id == zone)
            .ok_or_else(|| missing("route53 ChangeResourceRecordSets", "NoSuchHostedZone", zone.0.clone()))?;
        for c in changes {
            match c {
                RecordChange::Upsert(r) => {
                    let mut r = r.clone();
                    r.name = normalize(&r.name);
                    records.insert((r.name.clone(), r.set_identifier.clone()), r);
                }
                RecordChange::Delete(r) => {
                    let key = (normalize(&r.name), r.set_identifier.clone());
                    match records.get(&key) {
                        Some(have) if have.weight == r.weight => {
                            records.remove(&key);
                        }
                        _ => return Err(call_error("route53 ChangeResourceRecordSets", "InvalidChangeBatch", format!("no record {} [{}] with those values", r.name, r.set_identifier))),
                    }
                }
            }
        }
        s.changes.insert(id.clone(), insync);
        Ok(ChangeId(id))
    }

    async fn change_status(&self, change: &ChangeId) -> Result<ChangeStatus> {
        let s = self.call("route53:GetChange")?;
        let at = s.changes.get(&change.0).copied().ok_or_else(|| missing("route53 GetChange", "NoSuchChange", change.0.clone()))?;
        Ok(if self.clock.now() >= at { ChangeStatus::InSync } else { ChangeStatus::Pending })
    }
}

fn table_missing(table: &str) -> Error {
    Error::from(NotFound::LedgerTable { table: table.to_owned() }).with_cause(Cause::Missing)
}

#[async_trait]
impl Ledger for MemoryCloud {
    async fn table_exists(&self, table: &str) -> Result<bool> {
        Ok(self.call("dynamodb:DescribeTable")?.tables.iter().any(|t| t == table))
    }

    async fn create_table(&self, table: &str) -> Result<()> {
        let mut s = self.call("dynamodb:CreateTable")?;
        if s.tables.iter().any(|t| t == table) {
            return Err(call_error("dynamodb CreateTable", "ResourceInUseException", format!("table already exists: {table}")));
        }
        s.tables.push(table.to_owned());
        Ok(())
    }

    async fn put_record(&self, table: &str, record: &Record, expect: Expect) -> Result<bool> {
        let mut s = self.call("dynamodb:PutItem")?;
        if !s.tables.iter().any(|t| t == table) {
            return Err(table_missing(table));
        }
        let key = (partition_key(&record.app, &record.env), record.sort_key());
        let items = s.ledger.entry(table.to_owned()).or_default();
        let ok = match (&expect, items.get(&key)) {
            (Expect::Any, _) => true,
            (Expect::New, existing) => existing.is_none(),
            (Expect::Holder(h), Some(existing)) => &existing.holder == h,
            (Expect::Holder(_), None) => false,
        };
        if ok {
            items.insert(key, record.clone());
        }
        Ok(ok)
    }

    async fn put_record_with_lock(&self, table: &str, record: &Record, holder: &ReleaseId, lock: &LockInfo, write: LockWrite) -> Result<bool> {
        let mut s = self.call("dynamodb:TransactWriteItems")?;
        if !s.tables.iter().any(|t| t == table) {
            return Err(table_missing(table));
        }
        let key = (partition_key(&record.app, &record.env), record.sort_key());
        let pk = partition_key(&lock.app, &lock.env);
        let record_ok = s.ledger.get(table).and_then(|items| items.get(&key)).is_some_and(|r| &r.holder == holder);
        let lock_ok = s.locks.get(table).and_then(|l| l.get(&pk)).is_some_and(|h| h.release_id == lock.release_id);
        if !(record_ok && lock_ok) {
            return Ok(false);
        }
        s.ledger.entry(table.to_owned()).or_default().insert(key, record.clone());
        let locks = s.locks.entry(table.to_owned()).or_default();
        match write {
            LockWrite::Renew => locks.insert(pk, lock.clone()),
            LockWrite::Release => locks.remove(&pk),
        };
        Ok(true)
    }

    async fn records(&self, table: &str, app: &AppName, env: &EnvName, limit: Option<u32>) -> Result<Vec<Record>> {
        let s = self.call("dynamodb:Query")?;
        if !s.tables.iter().any(|t| t == table) {
            return Err(table_missing(table));
        }
        let pk = partition_key(app, env);
        Ok(s.ledger
            .get(table)
            .map(|t| t.iter().rev().filter(|((p, _), _)| *p == pk).take(limit.map_or(usize::MAX, |l| l as usize)).map(|(_, r)| r.clone()).collect())
            .unwrap_or_default())
    }

    async fn index_env(&self, table: &str, app: &AppName, env: &EnvName) -> Result<()> {
        let mut s = self.call("dynamodb:PutItem")?;
        if !s.tables.iter().any(|t| t == table) {
            return Err(table_missing(table));
        }
        s.index.entry(table.to_owned()).or_default().insert((index_key(app), env.to_string()));
        Ok(())
    }

    async fn indexed_envs(&self, table: &str, app: &AppName) -> Result<Vec<EnvName>> {
        let s = self.call("dynamodb:Query")?;
        if !s.tables.iter().any(|t| t == table) {
            return Err(table_missing(table));
        }
        let pk = index_key(app);
        Ok(s.index.get(table).map(|i| i.iter().filter(|(p, _)| *p == pk).filter_map(|(_, e)| EnvName::parse(e).ok()).collect()).unwrap_or_default())
    }
}

#[async_trait]
impl Lock for MemoryCloud {
    async fn acquire(&self, table: &str, lock: &LockInfo, over: Option<&LockInfo>) -> Result<Option<LockInfo>> {
        let mut s = self.call("dynamodb:PutItem")?;
        if !s.tables.iter().any(|t| t == table) {
            return Err(table_missing(table));
        }
        let locks = s.locks.entry(table.to_owned()).or_default();
        let pk = partition_key(&lock.app, &lock.env);
        match locks.get(&pk) {
            Some(held) if !over.is_some_and(|o| o.same_lease(held)) => Ok(Some(held.clone())),
            _ => {
                locks.insert(pk, lock.clone());
                Ok(None)
            }
        }
    }

    async fn renew(&self, table: &str, lock: &LockInfo) -> Result<bool> {
        let mut s = self.call("dynamodb:PutItem")?;
        if s.renewal_faults != 0 {
            s.renewal_faults -= i64::from(s.renewal_faults > 0);
            return Err(call_error("dynamodb:PutItem", "ProvisionedThroughputExceededException", "injected fault: lock renewal"));
        }
        let locks = s.locks.entry(table.to_owned()).or_default();
        let pk = partition_key(&lock.app, &lock.env);
        match locks.get(&pk) {
            Some(held) if held.release_id == lock.release_id => {
                locks.insert(pk, lock.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, table: &str, lock: &LockInfo) -> Result<()> {
        let mut s = self.call("dynamodb:DeleteItem")?;
        let locks = s.locks.entry(table.to_owned()).or_default();
        let pk = partition_key(&lock.app, &lock.env);
        if locks.get(&pk).is_some_and(|h| h.release_id == lock.release_id) {
            locks.remove(&pk);
        }
        Ok(())
    }

    async fn holder(&self, table: &str, app: &AppName, env: &EnvName) -> Result<Option<LockInfo>> {
        let s = self.call("dynamodb:GetItem")?;
        if !s.tables.iter().any(|t| t == table) {
            return Err(table_missing(table));
        }
        Ok(s.locks.get(table).and_then(|l| l.get(&partition_key(app, env))).cloned())
    }

    async fn break_lock(&self, table: &str, app: &AppName, env: &EnvName, seen: &ReleaseId) -> Result<bool> {
        let mut s = self.call("dynamodb:DeleteItem")?;
        let locks = s.locks.entry(table.to_owned()).or_default();
        let pk = partition_key(app, env);
        if locks.get(&pk).is_some_and(|h| &h.release_id == seen) {
            locks.remove(&pk);
            return Ok(true);
        }
        Ok(false)
    }
}

#[async_trait]
impl Queue for MemoryCloud {
    async fn enqueue(&self, table: &str, ticket: &Ticket) -> Result<()> {
        let mut s = self.call("dynamodb:PutItem")?;
        if !s.tables.iter().any(|t| t == table) {
            return Err(table_missing(table));
        }
        let key = (partition_key(&ticket.app, &ticket.env), ticket.sort_key());
        let tickets = s.tickets.entry(table.to_owned()).or_default();
        if tickets.contains_key(&key) {
            return Err(Internal::Invariant { what: format!("queue ticket {} exists already", ticket.id) }.into());
        }
        tickets.insert(key, ticket.clone());
        Ok(())
    }

    async fn tickets(&self, table: &str, app: &AppName, env: &EnvName) -> Result<Vec<Ticket>> {
        let s = self.call("dynamodb:Query")?;
        if !s.tables.iter().any(|t| t == table) {
            return Err(table_missing(table));
        }
        let pk = partition_key(app, env);
        Ok(s.tickets.get(table).map(|t| t.iter().filter(|((p, _), _)| *p == pk).map(|(_, t)| t.clone()).collect()).unwrap_or_default())
    }

    async fn update_ticket(&self, table: &str, ticket: &Ticket) -> Result<bool> {
        let mut s = self.call("dynamodb:PutItem")?;
        let key = (partition_key(&ticket.app, &ticket.env), ticket.sort_key());
        match s.tickets.entry(table.to_owned()).or_default().get_mut(&key) {
            Some(t) => {
                *t = ticket.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn remove_ticket(&self, table: &str, ticket: &Ticket) -> Result<bool> {
        let mut s = self.call("dynamodb:DeleteItem")?;
        let key = (partition_key(&ticket.app, &ticket.env), ticket.sort_key());
        Ok(s.tickets.entry(table.to_owned()).or_default().remove(&key).is_some())
    }
}

#[async_trait]
impl Firewall for MemoryCloud {
    async fn groups(&self, vpc: &str, names: &[String]) -> Result<Vec<SecurityGroup>> {
        let s = self.call("ec2:DescribeSecurityGroups")?;
        Ok(s.groups.values().filter(|(v, g)| v == vpc && names.contains(&g.name)).map(|(_, g)| g.clone()).collect())
    }

    async fn create_group(&self, vpc: &str, name: &str, _description: &str, _tags: &[(String, String)]) -> Result<String> {
        let mut s = self.call("ec2:CreateSecurityGroup")?;
        if s.groups.values().any(|(v, g)| v == vpc && g.name == name) {
            return Err(call_error("ec2 CreateSecurityGroup", "InvalidGroup.Duplicate", format!("The security group '{name}' already exists")));
        }
        let id = s.id("sg-");
        s.groups.insert(id.clone(), (vpc.to_owned(), SecurityGroup { id: id.clone(), name: name.to_owned(), ingress: Vec::new() }));
        Ok(id)
    }

    async fn authorize(&self, group: &str, rules: &[IngressRule]) -> Result<()> {
        let mut s = self.call("ec2:AuthorizeSecurityGroupIngress")?;
        let (_, g) = s.groups.get_mut(group).ok_or_else(|| missing("ec2 AuthorizeSecurityGroupIngress", "InvalidGroup.NotFound", group))?;
        for r in rules {
            if g.ingress.contains(r) {
                return Err(call_error("ec2 AuthorizeSecurityGroupIngress", "InvalidPermission.Duplicate", format!("{r:?}")));
            }
            g.ingress.push(r.clone());
        }
        g.ingress.sort();
        Ok(())
    }

    async fn revoke(&self, group: &str, rules: &[IngressRule]) -> Result<()> {
        let mut s = self.call("ec2:RevokeSecurityGroupIngress")?;
        let (_, g) = s.groups.get_mut(group).ok_or_else(|| missing("ec2 RevokeSecurityGroupIngress", "InvalidGroup.NotFound", group))?;
        g.ingress.retain(|r| !rules.contains(r));
        Ok(())
    }
}

/// Alarms: scripted by tests ([`MemoryCloud::put_alarm`], [`MemoryCloud::set_alarm_at`]).
impl MemoryCloud {
    /// Creates an alarm (state `INSUFFICIENT_DATA`, as CloudWatch creates them) or leaves an existing one.
    pub fn put_alarm(&self, name: &str) {
        self.state().alarms.entry(name.to_owned()).or_insert((release_core::ports::AlarmState::InsufficientData, Vec::new()));
    }

    /// Sets an alarm's state now.
    pub fn set_alarm(&self, name: &str, state: release_core::ports::AlarmState) {
        self.state().alarms.entry(name.to_owned()).or_insert((state, Vec::new())).0 = state;
    }

    /// Sets an alarm's state once `after` of simulated time has passed from now.
    pub fn set_alarm_at(&self, name: &str, state: release_core::ports::AlarmState, after: Duration) {
        let at = self.clock.now().add(after);
        self.state().alarms.entry(name.to_owned()).or_insert((release_core::ports::AlarmState::InsufficientData, Vec::new())).1.push((at, state));
    }

    /// Deletes an alarm.
    pub fn delete_alarm(&self, name: &str) {
        self.state().alarms.remove(name);
    }
}

#[async_trait]
impl release_core::ports::Alarms for MemoryCloud {
    async fn states(&self, names: &[String]) -> Result<Vec<release_core::ports::AlarmStatus>> {
        if names.len() > 100 {
            return Err(Input::TooManyAlarms { count: names.len() }.into());
        }
        let now = self.clock.now();
        let mut s = self.call("cloudwatch:DescribeAlarms")?;
        let mut out = Vec::new();
        for n in names {
            let Some((state, script)) = s.alarms.get_mut(n) else { continue };
            script.sort_by_key(|(t, _)| *t);
            while script.first().is_some_and(|(t, _)| *t <= now) {
                *state = script.remove(0).1;
            }
            if !out.iter().any(|a: &release_core::ports::AlarmStatus| &a.name == n) {
                out.push(release_core::ports::AlarmStatus { name: n.clone(), state: *state, reason: None });
            }
        }
        Ok(out)
    }
}
