//! A deploy ran and failed (exit 8): instances not running or not healthy in time, an alarm, a failing hook.

use std::fmt;

/// What failed in a deploy.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Deploy {
    /// A launched instance is in a state other than running.
    InstanceNotRunning {
        /// The instance.
        id: String,
        /// Its state (`terminated`, `shutting-down`).
        state: String,
    },
    /// A rollout went back to the weights from before it (an alarm, a failing hook, unhealthy instances).
    RolloutWentBack {
        /// The rollout's release id.
        release_id: String,
        /// The environment.
        env: String,
        /// The cluster it rolled out to.
        cluster: String,
        /// The shares it went back to (`blue 100%`).
        to: String,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for Deploy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deploy::InstanceNotRunning { id, state } => write!(f, "instance {id} is {state} instead of running"),
            Deploy::RolloutWentBack { release_id, env, cluster, to, reason } => {
                write!(f, "rollout {release_id} of {env} to {cluster} went back to {to}: {reason}")
            }
        }
    }
}
