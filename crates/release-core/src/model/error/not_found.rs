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
        }
    }
}
