//! A named thing does not exist (exit 3): an environment, a cluster, a commit's AMI, a load balancer, a zone.

use std::fmt;
use std::path::PathBuf;

/// What was not found, with what it was looked up by and what exists instead.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotFound {
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
            NotFound::Environment { name, file, known } => write!(f, "no environment `{name}` in {}; known: {}", file.display(), known.join(", ")),
            NotFound::Cluster { name, file, known } => write!(f, "no cluster `{name}` in {}; known: {}", file.display(), known.join(", ")),
            NotFound::ClusterOfEnv { env, name, known } => write!(f, "env {env} has no cluster {name}; its clusters: {}", known.join(", ")),
        }
    }
}
