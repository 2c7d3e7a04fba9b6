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
}

impl fmt::Display for Deploy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deploy::InstanceNotRunning { id, state } => write!(f, "instance {id} is {state} instead of running"),
        }
    }
}
