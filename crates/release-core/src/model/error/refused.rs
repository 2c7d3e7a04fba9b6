//! A safety check said no (exit 4); nothing was changed.

use std::fmt;

/// Which safety check refused, with the facts it judged on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    /// The world changed between the plan the user confirmed and the plan made under the lock.
    PlanChanged {
        /// The command to run again (`switch`, `rollback`, `gc`, `promote`).
        command: &'static str,
        /// What the confirmed plan said.
        then: String,
        /// What the plan says now.
        now: String,
    },
    /// The user did not confirm the plan.
    NotConfirmed,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::PlanChanged { command, then, now } => {
                write!(f, "the environment changed since the plan was shown (then: {then}; now: {now}); nothing was changed, run the {command} again")
            }
            Refused::NotConfirmed => f.write_str("not confirmed; nothing was changed (pass --yes to skip the question)"),
        }
    }
}
