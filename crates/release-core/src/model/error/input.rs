//! Bad input: a command line, a pipeline file or an argument value (exit 2). Nothing was changed.

use std::fmt;

/// Bad input, by what was wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// `--outcome` names no outcome.
    Outcome {
        /// What was given.
        given: String,
        /// The outcomes there are.
        known: Vec<String>,
    },
    /// A part of `--steps` that is neither a percentage nor `hold`.
    StepPart {
        /// The part.
        part: String,
    },
    /// `--steps` parsed but breaks a rule of rollout steps.
    Steps {
        /// The rule broken (`the last step of a rollout must be 100`).
        problem: String,
        /// How to fix it.
        hint: String,
    },
    /// `--weight` above 100.
    Weight {
        /// What was given.
        given: u8,
    },
    /// A switch of an environment without `dns`: there is no live name to switch.
    NoDns {
        /// The environment.
        env: String,
    },
    /// `--limit 0`.
    ZeroLimit,
    /// A pipeline with a hook, run by a program whose session runs no hooks.
    NoHookRunner {
        /// The hook (`before_traffic`).
        hook: String,
    },
    /// Not a full commit sha.
    CommitSha {
        /// What was given.
        given: String,
    },
    /// Not an AMI id.
    AmiId {
        /// What was given.
        given: String,
    },
    /// Not an instance id.
    InstanceId {
        /// What was given.
        given: String,
    },
    /// An app, environment or cluster name outside the naming rule.
    Name {
        /// `app`, `environment` or `cluster`.
        what: &'static str,
        /// What was given.
        given: String,
    },
    /// More alarms to watch than CloudWatch describes in one call.
    TooManyAlarms {
        /// How many.
        count: usize,
    },
    /// `[deploy] subnets` lists subnets of two VPCs.
    SubnetsSpanVpcs {
        /// The first VPC.
        first: String,
        /// Another.
        second: String,
    },
    /// More instances than one launch call takes.
    LaunchCount {
        /// How many.
        count: u32,
    },
    /// No AWS region anywhere.
    NoRegion,
    /// Several public hosted zones carry the domain: which one is delegated is not knowable.
    SeveralZones {
        /// The domain.
        name: String,
        /// The zones' ids.
        zones: Vec<String>,
    },
    /// The folder of the packer template cannot be read.
    PackerTemplateDir {
        /// The folder.
        path: std::path::PathBuf,
        /// What the OS said.
        error: String,
    },
    /// A packer template file cannot be read.
    PackerTemplate {
        /// The file.
        path: std::path::PathBuf,
        /// What the OS said.
        error: String,
    },
    /// The installed Packer is older than the template needs for AWS.
    PackerTooOld {
        /// Its version.
        version: String,
    },
    /// `[bake] vars` sets a variable the template does not declare.
    PackerVariable {
        /// The template.
        template: std::path::PathBuf,
        /// The variable.
        var: String,
    },
    /// A revision that cannot be one (empty, an option, with spaces).
    Revision {
        /// What was given.
        given: String,
    },
    /// No `pipelines/` directory here or above.
    NoPipelinesDir,
    /// The `pipelines/` directory holds no pipeline file.
    NoPipelineFiles {
        /// The directory.
        dir: std::path::PathBuf,
    },
    /// Several pipelines and no `--app` to pick one.
    SeveralPipelines {
        /// The apps, as listed to the user.
        known: String,
    },
    /// The command line did not parse (clap said why).
    Usage {
        /// What clap said, on one line.
        message: String,
        /// The command (`release promote`).
        command: String,
    },
    /// `--pause` is not a duration.
    Pause {
        /// What was given.
        given: String,
        /// Why it is not one.
        why: String,
    },
    /// `--pause` is longer than a rollout may pause.
    PauseTooLong {
        /// The most.
        max: std::time::Duration,
    },
    /// A reason flag (`--reason`) is empty: a freeze, a veto or a break-glass override must say why.
    EmptyReason {
        /// The flag.
        flag: &'static str,
    },
    /// `--until` is neither a moment nor a duration, or is already past.
    Until {
        /// What is wrong.
        why: String,
    },
    /// `--override-gates` without `--reason`.
    OverrideWithoutReason,
    /// A count flag that must be at least 1 is 0.
    Zero {
        /// The flag (`--limit`).
        flag: &'static str,
    },
    /// `gc --keep 0`.
    KeepZero,
    /// `--older-than` is not a duration.
    OlderThan {
        /// Why.
        why: String,
    },
    /// `--wait` is not a duration.
    Wait {
        /// What was wrong with it (it starts with the value given).
        why: String,
    },
    /// `--listen` is not an address.
    Listen {
        /// What was given.
        given: String,
    },
    /// `--interval` is not a duration.
    Interval {
        /// What was given.
        given: String,
        /// Why.
        why: String,
    },
    /// `--interval` below a second.
    IntervalTooShort {
        /// What was given.
        given: String,
    },
    /// `--token` shorter than 16 characters.
    TokenTooShort,
    /// A dashboard reachable from other machines without a token.
    ListenUnprotected {
        /// The address.
        addr: String,
    },
    /// The dashboard's address cannot be listened on.
    CannotListen {
        /// The address.
        addr: String,
        /// What the OS said.
        error: String,
    },
    /// `release validate` found problems (listed as the details).
    Problems {
        /// How many.
        problems: usize,
        /// In how many files.
        files: usize,
    },
    /// The pipeline file has problems (listed as the details).
    PipelineFile {
        /// The file.
        file: std::path::PathBuf,
        /// How many.
        problems: usize,
    },
    /// The pipeline file is outside the git repository it is to be baked from.
    OutsideRepository {
        /// The file.
        file: std::path::PathBuf,
        /// The repository's root.
        root: std::path::PathBuf,
    },
    /// The pipeline file as a commit has it is not valid (problems as the details).
    InvalidAtCommit {
        /// The file, inside the repository.
        path: std::path::PathBuf,
        /// The commit, short as shown.
        commit: String,
    },
    /// A webhook's `secret = "env:NAME"` names an empty variable.
    SecretEmpty {
        /// The variable.
        var: String,
    },
    /// A webhook's `secret = "env:NAME"` names a variable that is not set.
    SecretUnset {
        /// The variable.
        var: String,
    },
    /// A directory that must be inside a git repository (to bake, build or test) is not.
    NotARepository {
        /// The directory.
        dir: std::path::PathBuf,
    },
    /// `--weight` given with `--steps` or `--pause`: one share at once, or a rollout in steps, not both.
    WeightWithSteps,
    /// `--pause` without steps, neither `--steps` nor the environment's `[env.NAME.rollout] steps`.
    PauseWithoutSteps {
        /// The environment.
        env: String,
    },
    /// A cluster's `subnets` and `lb_subnets` are in two VPCs.
    LbSubnetsSpanVpcs {
        /// The cluster.
        cluster: String,
        /// The VPC of its instances' subnets.
        vpc: String,
        /// The VPC of its load balancer's subnets.
        lb_vpc: String,
    },
    /// An ALB's subnets are all in one availability zone (it needs two or more).
    LbSubnetsOneZone {
        /// The cluster.
        cluster: String,
    },
    /// A cluster's certificate is unusable: missing, not issued, or not for the live name.
    Certificate {
        /// The cluster.
        cluster: String,
        /// The certificate ARN.
        arn: String,
        /// What is wrong, and how to fix it (`is PENDING_VALIDATION; finish its validation`).
        problem: String,
    },
    /// Two load balancer subnets in one zone: a load balancer takes one subnet per zone (`CreateLoadBalancer`
    /// refuses the pair).
    LbSubnetsSameZone {
        /// The cluster.
        cluster: String,
        /// The zone.
        zone: String,
        /// The subnets in it.
        subnets: Vec<String>,
    },
    /// A promote to a blue/green environment with several idle clusters and no `--cluster` to pick one.
    SeveralIdle {
        /// The environment.
        env: String,
        /// The idle clusters.
        clusters: Vec<String>,
    },
    /// `release man COMMAND` names no command.
    Command {
        /// What was given.
        given: String,
        /// The commands there are.
        known: Vec<String>,
    },
    /// `[bake] vars` sets a variable `release` hands to Packer itself.
    ReservedVar {
        /// The variable.
        var: String,
        /// The pipeline file.
        file: std::path::PathBuf,
    },
    /// `gc` of an app without environments: it has no locks to take.
    NoEnvironments {
        /// The app.
        app: String,
    },
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Outcome { given, known } => write!(f, "--outcome `{given}` is not an outcome; use one of {}", known.join(", ")),
            Input::StepPart { part } => write!(f, "--steps: `{part}` is neither a percentage nor \"hold\"; give e.g. --steps 10,50,100"),
            Input::Steps { problem, hint } => write!(f, "--steps: {problem}; {hint}"),
            Input::Weight { given } => write!(f, "--weight is a percentage: give 0 to 100, not {given}"),
            Input::NoDns { env } => {
                write!(f, "env {env} has no dns, so there is nothing to switch; promote to it instead (`release promote <sha> --env {env}`)")
            }
            Input::ZeroLimit => f.write_str("--limit must be at least 1"),
            Input::NoHookRunner { hook } => {
                write!(f, "env has a {hook} hook but this program's session runs no hooks; set Session::hooks (the CLI runs them with sh -c)")
            }
            Input::CommitSha { given } => {
                write!(f, "`{given}` is not a full commit sha; give 40 lowercase hex characters (or resolve a short sha with git first)")
            }
            Input::AmiId { given } => write!(f, "`{given}` is not an AMI id; expected `ami-` followed by hex digits"),
            Input::InstanceId { given } => write!(f, "`{given}` is not an instance id; expected `i-` followed by hex digits"),
            Input::Name { what: "app", given } => {
                write!(f, "app name `{given}` is invalid; use 1-32 characters of a-z, 0-9 and `-`, not starting or ending with `-`")
            }
            Input::Name { what, given } => write!(f, "{what} name `{given}` is invalid; use 1-32 characters of a-z, 0-9 and `-`"),
            Input::TooManyAlarms { count } => write!(f, "{count} alarms to watch; CloudWatch describes at most 100 per call"),
            Input::SubnetsSpanVpcs { first, second } => write!(f, "subnets span two VPCs ({first} and {second}); list subnets of one VPC"),
            Input::LaunchCount { count } => write!(f, "cannot launch {count} instances in one call"),
            Input::NoRegion => f.write_str("no AWS region is configured; pass --region, set `region` in the pipeline file, or set AWS_REGION"),
            Input::SeveralZones { name, zones } => write!(
                f,
                "there are {} public hosted zones named {name} ({}); delete the one you do not use, so that the live name is written where the domain is delegated",
                zones.len(),
                zones.join(", ")
            ),
            Input::PackerTemplateDir { path, error } => write!(f, "cannot read packer template folder {}: {error}", path.display()),
            Input::PackerTemplate { path, error } => write!(f, "cannot read packer template {}: {error}", path.display()),
            Input::PackerTooOld { version } => write!(
                f,
                "packer {version} cannot bake for AWS: the template's aws source (IMDSv2, encryption, required_plugins) needs Packer 1.7 or later; install a current Packer or set PACKER=/path/to/packer"
            ),
            Input::PackerVariable { template, var } => {
                write!(f, "packer template {} does not declare variable `{var}`; declare it there or remove it from [bake] vars", template.display())
            }
            Input::Revision { given } => write!(f, "`{given}` is not a commit; give a sha (short or full), branch or tag"),
            Input::NoPipelinesDir => f.write_str("no pipelines/ directory here or above; cd into the project or pass --pipeline FILE"),
            Input::NoPipelineFiles { dir } => write!(f, "{} holds no pipeline files; create {}/<app>.toml", dir.display(), dir.display()),
            Input::SeveralPipelines { known } => write!(f, "there are several pipelines ({known}); pass --app NAME"),
            Input::Usage { message, command } => write!(f, "{message}; see `{command} --help`"),
            Input::Pause { given, why } => write!(f, "--pause {given}: {why}; give a duration like 30s, 5m or 1h"),
            Input::PauseTooLong { max } => {
                write!(f, "--pause is at most {}; for a longer wait put \"hold\" in --steps", crate::model::clock::format_duration(*max))
            }
            Input::Zero { flag } => write!(f, "{flag} must be at least 1"),
            Input::EmptyReason { flag } => write!(f, "{flag} is empty; say why, it goes into the ledger for everyone to read"),
            Input::Until { why } => write!(f, "--until: {why}"),
            Input::OverrideWithoutReason => f.write_str("--override-gates needs --reason TEXT: break-glass is recorded with why"),
            Input::KeepZero => f.write_str("--keep must be at least 1 (the target of the next rollback); the default is 3"),
            Input::OlderThan { why } => write!(f, "--older-than: {why}; give a duration like 14d, 36h or 0s"),
            Input::Wait { why } => write!(f, "--wait {why}; give a duration such as 10m, or --wait alone to wait as long as it takes"),
            Input::Listen { given } => write!(f, "--listen {given}: not an address; give IP:PORT, e.g. 127.0.0.1:8080"),
            Input::Interval { given, why } => write!(f, "--interval {given}: {why}; e.g. 5s or 1m"),
            Input::IntervalTooShort { given } => write!(f, "--interval {given} is too short; at least 1s (every poll calls AWS)"),
            Input::TokenTooShort => f.write_str("--token is too short; use at least 16 characters (e.g. `openssl rand -hex 16`)"),
            Input::ListenUnprotected { addr } => write!(
                f,
                "--listen {addr} is reachable from other machines; pass --token T (or RELEASE_DASHBOARD_TOKEN) so that only holders of it can read the board, or listen on 127.0.0.1"
            ),
            Input::CannotListen { addr, error } => write!(f, "cannot listen on {addr}: {error}; pick another --listen address or port"),
            Input::Problems { problems, files } => write!(
                f,
                "{problems} problem{} in {files} pipeline file{}",
                if *problems == 1 { "" } else { "s" },
                if *files == 1 { "" } else { "s" }
            ),
            Input::PipelineFile { file, problems } => write!(
                f,
                "{} has {problems} problem{}; run `release validate` and fix {}",
                file.display(),
                if *problems == 1 { "" } else { "s" },
                if *problems == 1 { "it" } else { "them" }
            ),
            Input::OutsideRepository { file, root } => write!(f, "{} is outside the git repository {}", file.display(), root.display()),
            Input::InvalidAtCommit { path, commit } => write!(f, "{} at commit {commit} is not valid; fix it in a new commit", path.display()),
            Input::SecretEmpty { var } => write!(f, "its secret env:{var} is empty; set {var} to the webhook's HMAC key"),
            Input::SecretUnset { var } => write!(f, "its secret env:{var} is not set; set {var} to the webhook's HMAC key"),
            Input::NotARepository { dir } => write!(f, "{} is not inside a git repository; bake, build and test need one", dir.display()),
            Input::WeightWithSteps => f.write_str("--weight sets one share at once and --steps/--pause a rollout in steps; give one of them"),
            Input::PauseWithoutSteps { env } => write!(f, "--pause needs steps: give --steps 10,50,100, or add steps to [env.{env}.rollout]"),
            Input::LbSubnetsSpanVpcs { cluster, vpc, lb_vpc } => {
                write!(f, "cluster {cluster}'s subnets and lb_subnets are in two VPCs ({vpc} and {lb_vpc}); use one VPC")
            }
            Input::LbSubnetsSameZone { cluster, zone, subnets } => write!(
                f,
                "cluster {cluster}'s load balancer subnets {} are all in {zone}; a load balancer takes one subnet per zone: keep one of them in lb_subnets",
                subnets.join(", ")
            ),
            Input::Certificate { cluster, arn, problem } => write!(f, "certificate {arn} of cluster {cluster} {problem}"),
            Input::LbSubnetsOneZone { cluster } => write!(f, "cluster {cluster}'s load balancer subnets span one zone; an ALB needs two or more; fix lb_subnets"),
            Input::SeveralIdle { env, clusters } => write!(f, "env {env} has several idle clusters ({}); pass --cluster", clusters.join(", ")),
            Input::Command { given, known } => write!(f, "`{given}` is not a command of release; one of: {}", known.join(", ")),
            Input::ReservedVar { var, file } => {
                write!(f, "[bake] vars sets `{var}`, which release passes to packer itself; remove it from {}", file.display())
            }
            Input::NoEnvironments { app } => write!(f, "{app} has no environments, so gc cannot take their locks; add an [env.NAME]"),
        }
    }
}
