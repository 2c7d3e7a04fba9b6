//! A bug, or a failure on this machine (exit 1).

use std::fmt;

/// What broke.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Internal {
    /// An invariant the engine relies on did not hold (a bug): `the unfinished record r-… vanished`.
    Invariant {
        /// What did not hold.
        what: String,
    },
    /// Reading or writing a local file or directory failed.
    Io {
        /// The path.
        path: String,
        /// What the OS said.
        error: String,
    },
}

impl fmt::Display for Internal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Internal::Invariant { what } => f.write_str(what),
            Internal::Io { path, error } => write!(f, "reading {path}: {error}"),
        }
    }
}
