//! Bad input: a command line, a pipeline file or an argument value (exit 2). Nothing was changed.

use std::fmt;

/// Bad input, by what was wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
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
