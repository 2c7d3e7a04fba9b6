//! Pipeline files (`pipelines/<app>.toml`, DESIGN §3). This module is the *model*: what a pipeline says, as types
//! the engine uses. [`parse`] turns a file into it, reporting every problem at its file:line:col with a fix hint;
//! [`load_dir`] also checks what only a whole directory shows (a load balancer owned by two apps' clusters).

mod parse;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use parse::{parse, parse_for_bake, parse_readable};

pub mod gates;
pub mod hooks;
pub mod launch;

pub use crate::model::weights::RolloutStep;

use crate::model::clock::format_duration;
use crate::model::error::{Error, Input, NotFound};
use crate::model::ids::{AmiId, AppName, ClusterName, EnvName};

/// The ledger table unless `ledger_table` says otherwise.
pub const DEFAULT_LEDGER_TABLE: &str = "release-ledger";
/// The largest `count` of a cluster.
pub const MAX_COUNT: i64 = 1000;

/// One problem in a pipeline file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "; fix: {hint}")?;
        }
        Ok(())
    }
}

/// A whole pipeline file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pipeline {
    /// The file this was read from.
    pub file: PathBuf,
    /// Relative paths in the file (template, artifact) are relative to this directory: the one holding `pipelines/`.
    pub root: PathBuf,
    /// The app's name.
    pub app: AppName,
    /// The AWS region, if the file names one.
    pub region: Option<String>,
    /// The DynamoDB table holding the ledger and the locks; `release-ledger` unless set.
    pub ledger_table: String,
    /// `[build]`.
    pub build: BuildStage,
    /// `[test]`, if any.
    pub test: Option<TestStage>,
    /// `[bake]`.
    pub bake: BakeSpec,
    /// `[deploy]`: the defaults every cluster inherits.
    pub deploy: DeploySettings,
    /// `[env.NAME]`, in file order.
    pub envs: Vec<Environment>,
    /// `[notify]`: where deploy events go.
    pub notify: NotifySettings,
}

/// `[notify]`: where deploy events go.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NotifySettings {
    /// Put into every event (e.g. the dashboard's address).
    pub link: Option<String>,
    /// `[[notify.sinks]]`, in file order.
    pub sinks: Vec<Sink>,
}

/// One `[[notify.sinks]]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sink {
    /// Where it delivers.
    pub kind: SinkKind,
    /// The events it takes (`on`; default: started, succeeded, failed, rolled-back).
    pub on: std::collections::BTreeSet<crate::model::event::EventKind>,
    /// For messages and the ledger: `webhook https://hooks.example.com/release` (never a secret).
    pub label: String,
}

/// Where a sink delivers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SinkKind {
    /// A JSON POST of the event, signed with HMAC-SHA256 when a secret is set (`X-Release-Signature: sha256=…`).
    Webhook {
        /// http(s) URL.
        url: String,
        /// The HMAC key.
        secret: Option<SecretRef>,
    },
    /// A Slack incoming webhook: a message readable at a glance.
    Slack {
        /// The incoming webhook's URL.
        url: String,
    },
    /// An SNS topic (message attributes app, env, outcome).
    Sns {
        /// The topic's ARN.
        topic: String,
    },
    /// A local command, run with `bash -c`, the event as JSON on its stdin.
    Command {
        /// The command line.
        command: String,
    },
}

/// A secret named in the pipeline file, never written there in clear.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "from", content = "name", rename_all = "kebab-case")]
pub enum SecretRef {
    /// `env:NAME`: an environment variable of the machine running `release`.
    Env(String),
    /// `ssm:/path`: an SSM parameter (SecureString), read when the event is sent.
    Ssm(String),
}

/// `[build]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BuildStage {
    /// Run in a clean export of the commit.
    pub command: String,
    /// What the build writes, relative to the export; handed to Packer.
    pub artifact: String,
}

/// `[test]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TestStage {
    /// Run in the export after the build.
    pub command: String,
}

/// The image a bake starts from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum BaseAmi {
    /// A fixed image.
    Id(AmiId),
    /// The newest available image whose name matches, owned by `base_owners`.
    NameFilter(String),
}

/// `[bake]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BakeSpec {
    /// The Packer template, relative to the project root.
    pub template: String,
    /// The base image.
    pub base_ami: BaseAmi,
    /// Owners trusted for a name-filter base.
    pub base_owners: Vec<String>,
    /// The builder's instance type.
    pub instance_type: String,
    /// Extra Packer variables.
    pub vars: BTreeMap<String, String>,
    /// Regions the AMI is copied to after the bake (each copy tagged like the original).
    pub regions: Vec<String>,
    /// Account ids the AMI (and its snapshots) is shared with.
    pub accounts: Vec<String>,
    /// Whether the real-AWS bake encrypts the AMI's snapshots (Packer's `encrypt_boot`; default true).
    pub encrypted: bool,
    /// The customer-managed KMS key of each region the AMI is in (the bake's and its copies'): Packer's
    /// `kms_key_id` for the bake's region, `region_kms_key_ids` for the copies. Required for every region when
    /// the encrypted AMI is shared with `accounts` (the default `aws/ebs` key cannot be shared).
    pub kms_keys: BTreeMap<String, String>,
}

/// `[deploy]`, and each cluster's overrides of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeploySettings {
    /// EC2 instance type of the fleet.
    pub instance_type: String,
    /// How long new instances may take to be healthy.
    #[serde(serialize_with = "ser_duration")]
    pub health_timeout: Duration,
    /// Deregistration wait before old instances are terminated (classic ELB connection draining timeout; target
    /// group deregistration delay).
    #[serde(serialize_with = "ser_duration")]
    pub drain: Duration,
    /// Instances' subnets; empty: the default VPC's.
    pub subnets: Vec<String>,
    /// Load balancers' subnets (public ones, when instances are private); empty: the same as `subnets`.
    pub lb_subnets: Vec<String>,
    /// Extra security groups for the instances (release makes one per cluster for them, and one for the load
    /// balancer).
    pub security_groups: Vec<String>,
    /// CIDRs that may reach the load balancer's listener.
    pub allow: Vec<String>,
    /// The port the service listens on; load balancers forward to it and health-check it.
    pub port: u16,
    /// The HTTP path the load balancer health-checks.
    pub health_path: String,
    /// The load balancer's health check.
    pub health: HealthCheck,
    /// The instance profile (needed for `ssm:` values).
    pub instance_profile: Option<String>,
    /// An EC2 key pair for SSH, if any.
    pub key_name: Option<String>,
    /// IMDSv2 (`required`, the default) or not (`optional`).
    pub metadata_tokens: MetadataTokens,
    /// The root volume; none: the AMI's.
    pub root_volume: Option<RootVolume>,
    /// How many instances a load balancer may hold (AWS's quota is 1000 unless raised): a swap needs 2 × count.
    pub max_targets: u32,
    /// What the instances run in: bare instances (the default) or an Auto Scaling group per release (issue 22).
    pub fleet: FleetKind,
    /// `scaling = { min, max, cpu }` as written (asg only): the group's bounds and CPU target.
    pub scaling: Scaling,
    /// How long a replaced group is kept, disabled, for an instant rollback (asg only); none: one hour.
    #[serde(serialize_with = "ser_opt_duration")]
    pub rollback_window: Option<Duration>,
    /// An ACM certificate ARN of the pipeline's region: the load balancer listens on 443 with TLS (and an ALB's
    /// port 80 redirects to HTTPS); none: plain HTTP on 80.
    pub certificate: Option<String>,
    /// The TLS security policy of the HTTPS listener; none: [`DeploySettings::default_tls_policy`].
    pub tls_policy: Option<String>,
    /// Whether the load balancer faces the internet (the default) or only its VPC (`scheme = "internal"`, in
    /// `lb_subnets`, private ones).
    pub internal: bool,
}

impl DeploySettings {
    /// AWS's recommended TLS 1.3 policy for ALBs; classic ELBs have no TLS 1.3 policy, so TLS 1.2 at least
    /// (the APIs' own default, `ELBSecurityPolicy-2016-08`, still allows TLS 1.0).
    pub fn default_tls_policy(classic: bool) -> &'static str {
        if classic {
            "ELBSecurityPolicy-TLS-1-2-2017-01"
        } else {
            "ELBSecurityPolicy-TLS13-1-2-2021-06"
        }
    }
}

/// What a cluster's instances run in (`fleet`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FleetKind {
    /// Instances `release` launches and retires itself.
    #[default]
    Instances,
    /// One Auto Scaling group per release, from a numbered launch template version.
    Asg,
}

impl FleetKind {
    /// As the pipeline file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            FleetKind::Instances => "instances",
            FleetKind::Asg => "asg",
        }
    }
}

/// `scaling = { min, max, cpu }` as written; a key not written is inherited, then defaults at the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Scaling {
    /// The group's MinSize (default: the cluster's count).
    pub min: Option<u32>,
    /// The group's MaxSize (default: the cluster's count).
    pub max: Option<u32>,
    /// A target-tracking policy on average CPU, in percent (1..=100); none: no policy.
    pub cpu: Option<u8>,
}

impl Scaling {
    /// Whether any key was written.
    pub fn is_set(&self) -> bool {
        self.min.is_some() || self.max.is_some() || self.cpu.is_some()
    }
}

/// How long a replaced group is kept, disabled, when `rollback_window` is not written.
pub const DEFAULT_ROLLBACK_WINDOW: Duration = Duration::from_secs(3600);

/// An asg cluster's group settings, resolved (defaults applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct AsgSettings {
    /// MinSize of a new group once it serves.
    pub min: u32,
    /// MaxSize.
    pub max: u32,
    /// The CPU target of the target-tracking policy, if any.
    pub cpu: Option<u8>,
    /// How long a replaced group is kept, disabled.
    #[serde(serialize_with = "ser_duration")]
    pub rollback_window: Duration,
}

/// How the load balancer checks an instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// Between checks.
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// For one check.
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// Passed checks in a row to become healthy.
    pub healthy: u32,
    /// Failed checks in a row to become unhealthy.
    pub unhealthy: u32,
}

impl HealthCheck {
    /// The least time a freshly registered instance needs to be healthy: its checks, after some boot time.
    pub fn least_time(&self) -> Duration {
        BOOT_ALLOWANCE + self.interval * self.healthy
    }
}

/// What a new instance takes to boot and start its service before the first check can pass (a rough floor).
pub const BOOT_ALLOWANCE: Duration = Duration::from_secs(30);

impl Default for HealthCheck {
    fn default() -> Self {
        Self { interval: Duration::from_secs(10), timeout: Duration::from_secs(5), healthy: 2, unhealthy: 2 }
    }
}

/// Whether instances must use IMDSv2 tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetadataTokens {
    /// IMDSv2 only.
    Required,
    /// IMDSv1 allowed.
    Optional,
}

impl MetadataTokens {
    /// As the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            MetadataTokens::Required => "required",
            MetadataTokens::Optional => "optional",
        }
    }
}

/// The instances' root volume.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct RootVolume {
    /// Size in GiB.
    pub size_gb: u32,
    /// `gp3`, `gp2`, `io1`, `io2`, `st1`, `sc1`, `standard`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Encrypted with the account's default EBS key.
    pub encrypted: bool,
    /// Provisioned IOPS: required for io1 and io2, optional for gp3 (EC2's default 3,000), refused for the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iops: Option<u32>,
    /// Provisioned throughput in MiB/s: gp3 only (EC2's default 125).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput: Option<u32>,
}

impl RootVolume {
    /// EC2's default root volume: 8 GiB gp3, encrypted.
    pub fn default_gp3() -> RootVolume {
        RootVolume { size_gb: 8, kind: "gp3".into(), encrypted: true, iops: None, throughput: None }
    }
}

// By hand, leaving out what is not set: the config hash (`launch::config_hash`) is made from this text, and a
// volume written as before must keep its hash, or every cluster would look changed after an upgrade.
impl std::fmt::Debug for RootVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("RootVolume");
        d.field("size_gb", &self.size_gb).field("kind", &self.kind).field("encrypted", &self.encrypted);
        if let Some(n) = self.iops {
            d.field("iops", &n);
        }
        if let Some(n) = self.throughput {
            d.field("throughput", &n);
        }
        d.finish()
    }
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

impl Default for DeploySettings {
    fn default() -> Self {
        Self {
            instance_type: "t3.micro".into(),
            health_timeout: Duration::from_secs(600),
            drain: Duration::from_secs(30),
            subnets: Vec::new(),
            lb_subnets: Vec::new(),
            security_groups: Vec::new(),
            allow: vec!["0.0.0.0/0".into()],
            port: 8080,
            health_path: "/health".into(),
            health: HealthCheck::default(),
            instance_profile: None,
            key_name: None,
            metadata_tokens: MetadataTokens::Required,
            root_volume: None,
            max_targets: 1000,
            fleet: FleetKind::Instances,
            scaling: Scaling::default(),
            rollback_window: None,
            certificate: None,
            tls_policy: None,
            internal: false,
        }
    }
}

impl DeploySettings {
    /// The load balancer's subnets.
    pub fn lb_subnets(&self) -> &[String] {
        if self.lb_subnets.is_empty() {
            &self.subnets
        } else {
            &self.lb_subnets
        }
    }
}

/// `[env.NAME]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Environment {
    /// Its name.
    pub name: EnvName,
    /// Variables handed to the instances (`ssm:` values are references, resolved at boot).
    pub vars: BTreeMap<String, String>,
    /// How traffic reaches it.
    pub topology: Topology,
    /// How commands waiting for its lock (`--wait`) are served.
    pub queue: QueueMode,
    /// `[env.NAME.rollout]`: weighted steps watched by alarms and health (blue/green), or the pause and alarms
    /// between the batches of an in-place `promote --batch N`.
    pub rollout: Option<Rollout>,
    /// Lifecycle hooks (`[env.NAME.hooks]`).
    pub hooks: crate::model::hook::HookSettings,
    /// Promotion gates: `requires`, `soak`, `approvals`, `windows`, `auto`.
    pub gates: gates::Gates,
}

/// How an environment's queue serves waiting commands (`queue = "fifo" | "latest"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueueMode {
    /// In order of arrival, each exactly once.
    #[default]
    Fifo,
    /// A newer waiting promote supersedes the older waiting promotes: CI deploying every merge ends on the newest
    /// commit without deploying each one.
    Latest,
}

impl QueueMode {
    /// `fifo` or `latest`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueMode::Fifo => "fifo",
            QueueMode::Latest => "latest",
        }
    }
}

/// How an environment takes traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Topology {
    /// One cluster behind its load balancer, replaced in place by each promote.
    InPlace {
        /// The cluster.
        cluster: Cluster,
    },
    /// Two or more clusters and a live name whose weighted records decide which takes traffic.
    BlueGreen {
        /// The live name.
        dns: DnsSettings,
        /// The clusters.
        clusters: Vec<Cluster>,
    },
}

impl Environment {
    /// The clusters that take no traffic under `weights`, in pipeline order: where a promote may go and what a
    /// rollback can switch back to. The one idle decision (a cluster without a record takes no traffic).
    pub fn idle_clusters(&self, weights: &crate::model::weights::Weights) -> Vec<&Cluster> {
        self.clusters().iter().filter(|c| !weights.is_live(&c.name)).collect()
    }

    /// Every cluster of the environment.
    pub fn clusters(&self) -> &[Cluster] {
        match &self.topology {
            Topology::InPlace { cluster } => std::slice::from_ref(cluster),
            Topology::BlueGreen { clusters, .. } => clusters,
        }
    }

    /// The live name of a blue/green environment.
    pub fn dns(&self) -> Option<&DnsSettings> {
        match &self.topology {
            Topology::InPlace { .. } => None,
            Topology::BlueGreen { dns, .. } => Some(dns),
        }
    }

    /// Whether the environment flips between clusters with Route53.
    pub fn is_blue_green(&self) -> bool {
        matches!(self.topology, Topology::BlueGreen { .. })
    }

    /// The cluster of that name in this environment.
    pub fn cluster(&self, name: &str) -> Result<&Cluster, Error> {
        self.clusters().iter().find(|c| c.name.as_str() == name).ok_or_else(|| {
            let known = self.clusters().iter().map(|c| c.name.to_string()).collect();
            NotFound::ClusterOfEnv { env: self.name.to_string(), name: name.to_owned(), known }.into()
        })
    }
}

/// The live name of a blue/green environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DnsSettings {
    /// The public hosted zone (`example.com.`).
    pub zone: String,
    /// The live name (`app.example.com.`), one weighted alias record per cluster.
    pub record: String,
    /// How long a cluster keeps getting traffic after a switch away from it (resolvers cache the alias for the
    /// load balancer's TTL, 60 s): a promote does not replace a cluster that was live less than this ago.
    #[serde(serialize_with = "ser_duration")]
    pub settle: Duration,
}

/// The default `settle`: the 60 s alias TTL plus a margin.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(120);

/// `[env.NAME.clusters.CLUSTER]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cluster {
    /// Its name, unique within the app.
    pub name: ClusterName,
    /// Its load balancer or target group; owned by this cluster only.
    pub target: LbTarget,
    /// How many instances it runs.
    pub count: u32,
    /// `[deploy]` with this cluster's overrides applied.
    pub deploy: DeploySettings,
    /// Where `load_balancer`/`target_group` is written (line, column), for diagnostics across files.
    #[serde(skip)]
    pub target_at: (usize, usize),
}

impl Cluster {
    /// Whether its load balancer is an ALB (a target group's).
    pub fn target_is_alb(&self) -> bool {
        matches!(self.target, LbTarget::TargetGroup(_))
    }

    /// Its group settings when it runs an asg fleet (`count` is the desired size of a first group; min and max
    /// default to it); none for an instances fleet.
    pub fn asg(&self) -> Option<AsgSettings> {
        let d = &self.deploy;
        (d.fleet == FleetKind::Asg).then(|| AsgSettings {
            min: d.scaling.min.unwrap_or(self.count),
            max: d.scaling.max.unwrap_or(self.count),
            cpu: d.scaling.cpu,
            rollback_window: d.rollback_window.unwrap_or(DEFAULT_ROLLBACK_WINDOW),
        })
    }
}

/// A cluster's load balancer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "kebab-case")]
pub enum LbTarget {
    /// A classic ELB, by name.
    ClassicElb(String),
    /// An ELBv2 target group, by name (provision creates an ALB and listener of the same name in front of it).
    TargetGroup(String),
}

impl LbTarget {
    /// The load balancer's or target group's name.
    pub fn name(&self) -> &str {
        match self {
            LbTarget::ClassicElb(n) | LbTarget::TargetGroup(n) => n,
        }
    }
}

impl fmt::Display for LbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LbTarget::ClassicElb(n) => write!(f, "load balancer {n}"),
            LbTarget::TargetGroup(n) => write!(f, "target group {n}"),
        }
    }
}

impl Pipeline {
    /// The environment of that name, or not-found naming the known ones.
    pub fn env(&self, name: &str) -> Result<&Environment, Error> {
        self.envs.iter().find(|e| e.name.as_str() == name).ok_or_else(|| {
            let known = self.envs.iter().map(|e| e.name.to_string()).collect();
            NotFound::Environment { name: name.to_owned(), file: self.file.clone(), known }.into()
        })
    }

    /// The environment owning a cluster; cluster names are unique within an app.
    pub fn cluster(&self, name: &str) -> Result<(&Environment, &Cluster), Error> {
        self.envs
            .iter()
            .flat_map(|e| e.clusters().iter().map(move |c| (e, c)))
            .find(|(_, c)| c.name.as_str() == name)
            .ok_or_else(|| {
                let known = self.envs.iter().flat_map(|e| e.clusters().iter().map(|c| c.name.to_string())).collect();
                NotFound::Cluster { name: name.to_owned(), file: self.file.clone(), known }.into()
            })
    }

    /// Every (environment, cluster).
    pub fn clusters(&self) -> impl Iterator<Item = (&Environment, &Cluster)> {
        self.envs.iter().flat_map(|e| e.clusters().iter().map(move |c| (e, c)))
    }
}

/// EC2's limit on user data, in bytes (before base64).
pub const USER_DATA_LIMIT: usize = 16 * 1024;

/// The size of the user data an environment's variables make, for the longest app name and ids.
pub fn user_data_size(vars: &BTreeMap<String, String>, cluster: &Cluster) -> usize {
    let app = AppName::parse(&"a".repeat(AppName::MAX_LEN)).expect("a valid name");
    let env = EnvName::parse(&"e".repeat(EnvName::MAX_LEN)).expect("a valid name");
    let commit = crate::model::ids::CommitSha::parse(&"0".repeat(40)).expect("a valid sha");
    let release = crate::model::ids::ReleaseId::from_string("r20261122T034950Z-3f9a1c".into());
    crate::model::pipeline::launch::user_data(&app, &env, vars, cluster, &commit, &release, "ap-southeast-2").len()
}

/// The project root for a pipeline file: the parent of its `pipelines/` directory, else the file's own directory.
pub fn project_root(file: &Path) -> PathBuf {
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
    if dir.file_name().is_some_and(|n| n == "pipelines") {
        match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    } else {
        dir
    }
}

/// Reads and validates one pipeline file. Relative paths are checked against [`project_root`].
pub fn load_file(file: &Path) -> Result<Pipeline, Vec<Diagnostic>> {
    let src = std::fs::read_to_string(file).map_err(|e| {
        vec![Diagnostic {
            file: file.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("cannot read the pipeline file: {e}"),
            hint: Some("pass an existing file with --pipeline, or create pipelines/<app>.toml".into()),
        }]
    })?;
    parse(file, &project_root(file), &src, true)
}

/// Reads one pipeline file for a command that only reads AWS (see [`parse_readable`]).
pub fn load_readable(file: &Path) -> Result<(Pipeline, Vec<Diagnostic>), Vec<Diagnostic>> {
    let src = std::fs::read_to_string(file).map_err(|e| {
        vec![Diagnostic { file: file.to_path_buf(), line: 1, col: 1, message: format!("cannot read the pipeline file: {e}"), hint: None }]
    })?;
    parse_readable(file, &project_root(file), &src)
}

/// Reads one pipeline file for a bake: only app, `[build]`, `[test]` and `[bake]` (see [`parse_for_bake`]).
pub fn load_for_bake(file: &Path) -> Result<Pipeline, Vec<Diagnostic>> {
    let src = std::fs::read_to_string(file).map_err(|e| {
        vec![Diagnostic { file: file.to_path_buf(), line: 1, col: 1, message: format!("cannot read the pipeline file: {e}"), hint: None }]
    })?;
    parse_for_bake(file, &project_root(file), &src)
}

/// Every `*.toml` in `dir`, sorted by name.
pub fn pipeline_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Loads several pipeline files (one directory's) and checks what only all of them together show: a load
/// balancer or target group may belong to one cluster only, across environments and across apps, and two files
/// may not name the same app. Returns each file's result; cross-file problems are added to the files involved.
pub fn load_dir(files: &[PathBuf]) -> Vec<(PathBuf, Result<Pipeline, Vec<Diagnostic>>)> {
    let mut results: Vec<(PathBuf, Result<Pipeline, Vec<Diagnostic>>)> = files.iter().map(|f| (f.clone(), load_file(f))).collect();
    let mut owners: BTreeMap<String, (PathBuf, String, (usize, usize))> = BTreeMap::new();
    let mut apps: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut extra: Vec<(usize, Diagnostic)> = Vec::new();
    for (i, (file, result)) in results.iter().enumerate() {
        let Ok(p) = result else { continue };
        if let Some(other) = apps.get(p.app.as_str()) {
            extra.push((
                i,
                Diagnostic {
                    file: file.clone(),
                    line: 1,
                    col: 1,
                    message: format!("app `{}` is also defined by {}", p.app, other.display()),
                    hint: Some("each app has one pipeline file; rename one app".into()),
                },
            ));
        }
        apps.insert(p.app.to_string(), file.clone());
        for (env, c) in p.clusters() {
            let key = c.target.name().to_owned();
            let label = format!("{}/{}/{}", p.app, env.name, c.name);
            if let Some((ofile, olabel, _)) = owners.get(&key) {
                if ofile != file {
                    extra.push((
                        i,
                        Diagnostic {
                            file: file.clone(),
                            line: c.target_at.0,
                            col: c.target_at.1,
                            message: format!("{} of cluster {label} is also used by cluster {olabel} in {}", c.target, ofile.display()),
                            hint: Some("a load balancer belongs to one cluster only; give each cluster its own".into()),
                        },
                    ));
                }
            } else {
                owners.insert(key, (file.clone(), label, c.target_at));
            }
        }
    }
    for (i, d) in extra {
        let (_, result) = &mut results[i];
        match result {
            Ok(_) => *result = Err(vec![d]),
            Err(diags) => diags.push(d),
        }
    }
    results
}

/// The pause of a rollout step when `pause` is not given.
pub const DEFAULT_ROLLOUT_PAUSE: Duration = Duration::from_secs(300);
/// The longest pause a step may have (a longer wait is a `"hold"`).
pub const MAX_ROLLOUT_PAUSE: Duration = Duration::from_secs(24 * 3600);
/// The most alarms one rollout watches: DescribeAlarms takes 100 names per call, and one call per poll is the rule.
pub const MAX_ROLLOUT_ALARMS: usize = 100;

/// `[env.NAME.rollout]` (or `rollout = { ... }`).
///
/// With `dns`: `steps` are the target cluster's shares, one Route53 change each, each watched for `pause`. Without
/// `dns` (in place) there are no steps: `pause` and `alarms` apply between the batches of `promote --batch N`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rollout {
    /// The target's share at each step (blue/green); empty in place.
    pub steps: Vec<RolloutStep>,
    /// How long each step (or batch) is watched before the next.
    #[serde(serialize_with = "crate::model::clock::ser_duration")]
    pub pause: Duration,
    /// CloudWatch alarms watched during each pause: one in ALARM rolls back.
    pub alarms: Vec<String>,
}

/// What is wrong with a list of steps: (index of the offending step, message, fix).
pub fn check_steps(steps: &[RolloutStep]) -> Result<(), (usize, String, String)> {
    if steps.is_empty() {
        return Err((0, "a rollout needs at least one step".into(), "write steps = [10, 50, 100]".into()));
    }
    let mut last: Option<u8> = None;
    for (i, s) in steps.iter().enumerate() {
        match s {
            RolloutStep::Percent(p) => {
                if !(1..=100).contains(p) {
                    return Err((i, format!("step {p} is not a share of 1 to 100 percent"), "use whole percentages from 1 to 100".into()));
                }
                if let Some(l) = last.filter(|l| p <= l) {
                    return Err((i, format!("step {p}% does not increase on the step before it ({l}%)"), "list the shares in increasing order, e.g. [10, 50, 100]".into()));
                }
                last = Some(*p);
            }
            RolloutStep::Hold if last.is_none() => {
                return Err((i, "a rollout cannot begin with \"hold\": nothing would be watched yet".into(), "put \"hold\" after the share you want to look at, e.g. [10, \"hold\", 100]".into()));
            }
            RolloutStep::Hold if matches!(steps.get(i.wrapping_sub(1)), Some(RolloutStep::Hold)) => {
                return Err((i, "two \"hold\" steps in a row".into(), "keep one".into()));
            }
            RolloutStep::Hold => {}
        }
    }
    if steps.last() != Some(&RolloutStep::Percent(100)) {
        return Err((steps.len() - 1, "the last step of a rollout must be 100".into(), "end the steps with 100, e.g. [10, 50, 100]".into()));
    }
    Ok(())
}

/// Parses `10,50,hold,100` (the `--steps` flag) and checks it as the file's steps are checked.
pub fn parse_steps(s: &str) -> Result<Vec<RolloutStep>, Error> {
    let mut steps = Vec::new();
    for part in s.split(',').map(str::trim) {
        if part == "hold" {
            steps.push(RolloutStep::Hold);
            continue;
        }
        match part.trim_end_matches('%').parse::<u8>() {
            Ok(p) => steps.push(RolloutStep::Percent(p)),
            Err(_) => return Err(Input::StepPart { part: part.to_owned() }.into()),
        }
    }
    check_steps(&steps).map_err(|(_, problem, hint)| Error::from(Input::Steps { problem, hint }))?;
    Ok(steps)
}
