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
        }
    }
}
