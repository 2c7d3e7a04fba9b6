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
    /// A call into this machine's OS failed: a process, a pipe, a socket, a task.
    System {
        /// What was being done (`cannot run git`, `waiting for packer`).
        what: String,
        /// What the OS (or the process) said.
        error: String,
    },
    /// The signal handlers for Ctrl-C and SIGTERM could not be installed.
    Signals,
    /// Encoding a value as JSON failed.
    Encode {
        /// What (`a ledger item`, `the event`).
        what: &'static str,
        /// What the encoder said.
        error: String,
    },
    /// Building an SDK request shape failed: a required field is missing (a bug here, not the user's).
    SdkShape {
        /// What was built.
        what: String,
        /// What the builder said.
        error: String,
    },
}

impl fmt::Display for Internal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Internal::Invariant { what } => f.write_str(what),
            Internal::Io { path, error } => write!(f, "reading {path}: {error}"),
            Internal::System { what, error } => write!(f, "{what}: {error}"),
            Internal::Signals => f.write_str("cannot watch for Ctrl-C and SIGTERM"),
            Internal::Encode { what, error } => write!(f, "encoding {what}: {error}"),
            Internal::SdkShape { what, error } => write!(f, "building {what}: {error}"),
        }
    }
}
