//! A named thing does not exist (exit 3): an environment, a cluster, a commit's AMI, a load balancer, a zone.

use std::fmt;
use std::path::PathBuf;

/// What was not found, with what it was looked up by and what exists instead.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotFound {
    /// No AMI for a commit a promote would wait its turn for (`--wait`): refused before it queues.
    AmiBeforeQueue {
        /// The commit (full sha).
        commit: String,
    },
    /// An environment neither in the pipeline file nor in its ledger (`history --env`).
    EnvironmentOrLedger {
        /// The name asked for.
        name: String,
        /// The pipeline file.
        file: PathBuf,
        /// The environments of the file, then those only the ledger knows.
        known: Vec<String>,
    },
    /// The live name has no weighted record for the cluster traffic would go to.
    LiveRecord {
        /// The cluster.
        cluster: String,
    },
    /// Alarms a rollout's watch names that do not exist in CloudWatch.
    Alarms {
        /// The environment.
        env: String,
        /// The missing alarms.
        missing: Vec<String>,
    },
    /// The hosted zone of an environment's live name.
    Zone {
        /// The zone's name.
        zone: String,
        /// The environment.
        env: String,
    },
    /// The live name lacks weighted records for clusters of the file.
    Records {
        /// The live name.
        record: String,
        /// The clusters without a record.
        missing: Vec<String>,
        /// The environment.
        env: String,
    },
    /// A cluster's load balancer, or a part of it (`target group tg-1`, `listener of alb-1`).
    LbPart {
        /// The part as it reads (`target group hello-prod1`).
        part: String,
        /// The cluster.
        cluster: String,
        /// The environment to provision.
        env: String,
    },
    /// No environment of that name in the pipeline file.
    Environment {
        /// The name asked for.
        name: String,
        /// The pipeline file.
        file: PathBuf,
        /// The environments it has.
        known: Vec<String>,
    },
    /// No cluster of that name in the pipeline file.
    Cluster {
        /// The name asked for.
        name: String,
        /// The pipeline file.
        file: PathBuf,
        /// The clusters it has.
        known: Vec<String>,
    },
    /// No cluster of that name in one environment.
    ClusterOfEnv {
        /// The environment.
        env: String,
        /// The name asked for.
        name: String,
        /// The environment's clusters.
        known: Vec<String>,
    },
    /// The subnets of `[deploy] subnets` do not exist (EC2 said so).
    Subnets {
        /// What EC2 said.
        why: String,
    },
    /// No subnets were listed and the account has no default VPC in the region.
    DefaultSubnets,
    /// A load balancer or target group does not exist.
    LbTarget {
        /// Which (`load balancer hello-prod1`, `target group hello-prod1`).
        target: String,
    },
    /// `[bake] base_ami` names an AMI id the region does not have.
    BaseAmi {
        /// The AMI.
        id: String,
        /// The region.
        region: String,
    },
    /// No available AMI matches `[bake] base_ami`'s name filter.
    BaseAmiNamed {
        /// The name filter.
        filter: String,
        /// The owners searched (`base_owners`).
        owners: Vec<String>,
        /// The region.
        region: String,
    },
    /// The app's ledger table does not exist: nothing was provisioned yet.
    LedgerTable {
        /// The table.
        table: String,
    },
    /// An SSM parameter exists but holds no value.
    SsmValue {
        /// The parameter.
        name: String,
    },
    /// The packer binary is not there.
    Packer {
        /// What was run (`packer`, or `PACKER`).
        program: PathBuf,
    },
    /// `packer version` did not say which version it is: not Packer, or a broken one.
    PackerVersion {
        /// What was run.
        program: PathBuf,
        /// The first line it printed.
        said: String,
    },
    /// git cannot be run.
    Git {
        /// What the OS said.
        error: String,
    },
    /// git does not know the revision.
    Revision {
        /// The revision given.
        rev: String,
        /// The repository.
        repo: PathBuf,
    },
    /// git does not know a commit it was asked about.
    Commit {
        /// The commit, short (12 characters) as shown.
        commit: String,
    },
    /// A directory is not inside a git repository (where the revision was to be resolved).
    Repository {
        /// The directory.
        dir: PathBuf,
    },
    /// A commit is neither in this repository nor baked into an AMI.
    CommitNowhere {
        /// The revision given.
        rev: String,
    },
    /// No pipeline file for the app `--app` names.
    App {
        /// The app asked for.
        app: String,
        /// The file it would be.
        file: PathBuf,
        /// The apps there are, as listed to the user.
        known: String,
    },
    /// `release test` on a pipeline without `[test]`.
    TestSection {
        /// The pipeline file.
        file: PathBuf,
    },
    /// A file to read is not there (or not readable).
    File {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        error: String,
    },
    /// The pipeline file is not in the exported commit.
    FileAtCommit {
        /// The path inside the repository.
        path: PathBuf,
        /// The commit, short as shown.
        commit: String,
    },
    /// No AMI carries the commit a promote goes to.
    Ami {
        /// The commit (full sha; the message shows it short, then whole in the command to run).
        commit: String,
    },
    /// The security group of a cluster's instances does not exist.
    SecurityGroup {
        /// The group's name.
        group: String,
        /// The cluster.
        cluster: String,
        /// The environment to provision.
        env: String,
    },
    /// `--cluster` names another cluster than the only one of the environment.
    OnlyCluster {
        /// The environment.
        env: String,
        /// Its one cluster.
        only: String,
        /// The cluster asked for.
        wanted: String,
    },
    /// The hosted zone provision found (or made) is gone when it writes the records.
    ZoneVanished {
        /// The zone's name.
        zone: String,
    },
    /// The load balancer a live record is to alias does not exist.
    LbOfCluster {
        /// The load balancer (`load balancer hello-prod1`).
        target: String,
        /// The cluster.
        cluster: String,
        /// The environment to provision.
        env: String,
    },
    /// A rollback finds no release to go back to.
    RollbackTarget {
        /// The environment.
        env: String,
        /// Why (`the ledger holds no release live before 0123456789ab`).
        what: String,
    },
    /// Traffic is split over clusters and the ledger does not tell the weights from before the shift.
    WeightsBeforeShift {
        /// The environment.
        env: String,
        /// The shares now (`blue 90%, green 10%`).
        shares: String,
    },
    /// The release a rollback goes back to has lost its AMI.
    PreviousAmi {
        /// The commit (full sha; the message shows it short, then whole in the command to run).
        commit: String,
    },
    /// `rollout continue` in an in-place environment: it has no rollouts.
    NoRollouts {
        /// The environment.
        env: String,
    },
    /// `rollout continue` with no rollout under way.
    Rollout {
        /// The environment.
        env: String,
        /// Its clusters, one of which a switch starts a rollout to.
        clusters: Vec<String>,
    },
    /// A part of a cluster's load balancer is gone (`status` of an environment with a history): what its lookup
    /// said, as the status shows it (it is also the cluster's note there).
    LbGone {
        /// The lookup's message (`target group hello-prod1 of cluster prod1 does not exist; run …`).
        what: String,
    },
    /// `release queue cancel` names no waiting ticket of the app.
    Ticket {
        /// The ticket asked for.
        id: String,
        /// The app.
        app: String,
    },
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotFound::AmiBeforeQueue { commit } => {
                write!(f, "no AMI for {}; run `release bake {commit}`, then promote again", commit.get(..12).unwrap_or(commit))
            }
            NotFound::EnvironmentOrLedger { name, file, known } => {
                write!(f, "no environment `{name}` in {} nor in its ledger; known: {}", file.display(), known.join(", "))
            }
            NotFound::LiveRecord { cluster } => write!(f, "the live name has no record for cluster {cluster}; run `release provision`"),
            NotFound::Alarms { env, missing } => {
                let many = missing.len() > 1;
                write!(
                    f,
                    "alarm{} {} of env {env}'s rollout do{} not exist in CloudWatch; create {} or fix `alarms` in [env.{env}.rollout]; nothing was changed",
                    if many { "s" } else { "" },
                    missing.join(", "),
                    if many { "" } else { "es" },
                    if many { "them" } else { "it" },
                )
            }
            NotFound::Zone { zone, env } => write!(f, "hosted zone {zone} does not exist; run `release provision --env {env}`"),
            NotFound::Records { record, missing, env } => {
                write!(f, "{record} has no weighted record for {}; run `release provision --env {env}`", missing.join(", "))
            }
            NotFound::LbPart { part, cluster, env } => write!(f, "{part} of cluster {cluster} does not exist; run `release provision --env {env}`"),
            NotFound::Environment { name, file, known } => write!(f, "no environment `{name}` in {}; known: {}", file.display(), known.join(", ")),
            NotFound::Cluster { name, file, known } => write!(f, "no cluster `{name}` in {}; known: {}", file.display(), known.join(", ")),
            NotFound::ClusterOfEnv { env, name, known } => write!(f, "env {env} has no cluster {name}; its clusters: {}", known.join(", ")),
            NotFound::Subnets { why } => write!(f, "{why}; fix [deploy] subnets"),
            NotFound::DefaultSubnets => f.write_str("this account has no default VPC subnets in the region; list subnets in [deploy] subnets"),
            NotFound::LbTarget { target } => write!(f, "{target} does not exist"),
            NotFound::BaseAmi { id, region } => write!(f, "base AMI {id} does not exist in region {region}; fix [bake] base_ami"),
            NotFound::BaseAmiNamed { filter, owners, region } => write!(
                f,
                "no available AMI named like `{filter}` owned by {} in region {region}; fix [bake] base_ami or base_owners",
                owners.join(", ")
            ),
            NotFound::LedgerTable { table } => {
                write!(f, "ledger table {table} does not exist; `release provision` an environment of this app first (it creates the table)")
            }
            NotFound::SsmValue { name } => write!(f, "ssm parameter {name} has no value"),
            NotFound::Packer { program } => write!(f, "packer is not installed (no `{}` on PATH); {PACKER_HINT}", program.display()),
            NotFound::PackerVersion { program, said } => {
                write!(f, "`{} version` did not report a Packer version ({said}); {PACKER_HINT}", program.display())
            }
            NotFound::Git { error } => write!(f, "cannot run git ({error}); install git"),
            NotFound::Revision { rev, repo } => write!(f, "unknown commit `{rev}` in {}; check the sha (git log) or fetch it first", repo.display()),
            NotFound::Commit { commit } => write!(f, "git does not know commit {commit}"),
            NotFound::Repository { dir } => write!(f, "{} is not inside a git repository; bake, build and test need one", dir.display()),
            NotFound::CommitNowhere { rev } => write!(f, "commit {rev} is not in this repository and has no AMI; check the sha (git log), or fetch it"),
            NotFound::App { app, file, known } => write!(f, "no pipeline for app `{app}` ({} does not exist); known apps: {known}", file.display()),
            NotFound::TestSection { file } => write!(f, "{} has no [test] section; add one with a command", file.display()),
            NotFound::File { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            NotFound::FileAtCommit { path, commit } => write!(f, "{} does not exist at commit {commit}; commit it first", path.display()),
            NotFound::Ami { commit } => write!(f, "no AMI for {}; run `release bake {commit}`", commit.get(..12).unwrap_or(commit)),
            NotFound::SecurityGroup { group, cluster, env } => {
                write!(f, "security group {group} of cluster {cluster} does not exist; run `release provision --env {env}`")
            }
            NotFound::OnlyCluster { env, only, wanted } => write!(f, "env {env} has one cluster, {only}, not {wanted}"),
            NotFound::ZoneVanished { zone } => write!(f, "hosted zone {zone} vanished while provisioning"),
            NotFound::LbOfCluster { target, cluster, env } => write!(f, "{target} for cluster {cluster} does not exist; run `release provision --env {env}`"),
            NotFound::RollbackTarget { env, what } => write!(f, "nothing to roll back to in env {env}: {what}"),
            NotFound::WeightsBeforeShift { env, shares } => write!(
                f,
                "traffic of env {env} is split ({shares}) and the ledger does not tell the weights from before the shift; choose with `release switch <cluster>`"
            ),
            NotFound::PreviousAmi { commit } => write!(
                f,
                "the previous release {} has no AMI any more (deregistered?); bake it again with `release bake {commit}`, then roll back",
                commit.get(..12).unwrap_or(commit)
            ),
            NotFound::NoRollouts { env } => write!(
                f,
                "env {env} is in place and has no rollouts (`promote --batch N` watches [env.{env}.rollout] alarms between batches by itself); nothing to continue"
            ),
            NotFound::Rollout { env, clusters } => write!(f, "env {env} has no rollout under way; start one with `release switch {}`", clusters.join("|")),
            NotFound::LbGone { what } => f.write_str(what),
            NotFound::Ticket { id, app } => write!(
                f,
                "no waiting ticket {id} in any environment of {app}; `release queue` lists the tickets (a ticket leaves the queue once its command runs)"
            ),
        }
    }
}

/// Where to get Packer.
const PACKER_HINT: &str = "install it with `apt-get install packer` (Debian), or from HashiCorp's releases, or set PACKER=/path/to/packer";
