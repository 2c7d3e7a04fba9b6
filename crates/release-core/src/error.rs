//! Errors as context + kind: every failure says what went wrong in one lowercase line and carries a kind that
//! decides the process exit code. The codes are a contract (README "Exit codes").

use std::fmt;

/// Exit codes of the `release` binary; documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    /// Anything unexpected: a bug, an I/O failure on this machine.
    pub const INTERNAL: i32 = 1;
    /// Bad command line, pipeline file or argument value.
    pub const INPUT: i32 = 2;
    /// A named thing does not exist: commit, AMI, environment, cluster, load balancer, hosted zone.
    pub const NOT_FOUND: i32 = 3;
    /// A safety check refused the action (e.g. promoting the live cluster, switching to an unhealthy one).
    pub const REFUSED: i32 = 4;
    /// Another operator holds the environment's lock.
    pub const LOCK_HELD: i32 = 5;
    /// AWS (or the emulator) failed, could not be reached, or denied the call.
    pub const AWS: i32 = 6;
    /// A build, test or Packer stage ran and failed.
    pub const STAGE_FAILED: i32 = 7;
    /// A deploy ran and failed; the environment was put back as it was.
    pub const DEPLOY_FAILED: i32 = 8;
    /// Interrupted by Ctrl-C / SIGTERM after cleaning up.
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Internal,
    Input,
    NotFound,
    Refused,
    LockHeld,
    Aws,
    StageFailed,
    DeployFailed,
    Interrupted,
    /// A checkpoint hook stopped the engine where a crash would (tests only): nothing may be cleaned up.
    Crash,
}

impl ErrorKind {
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Internal => exit::INTERNAL,
            ErrorKind::Input => exit::INPUT,
            ErrorKind::NotFound => exit::NOT_FOUND,
            ErrorKind::Refused => exit::REFUSED,
            ErrorKind::LockHeld => exit::LOCK_HELD,
            ErrorKind::Aws => exit::AWS,
            ErrorKind::StageFailed => exit::STAGE_FAILED,
            ErrorKind::DeployFailed => exit::DEPLOY_FAILED,
            ErrorKind::Interrupted => exit::INTERRUPTED,
            ErrorKind::Crash => exit::INTERNAL,
        }
    }

    /// Stable name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Internal => "internal",
            ErrorKind::Input => "input",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Refused => "refused",
            ErrorKind::LockHeld => "lock-held",
            ErrorKind::Aws => "aws",
            ErrorKind::StageFailed => "stage-failed",
            ErrorKind::DeployFailed => "deploy-failed",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Crash => "crash",
        }
    }
}

#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// Extra lines shown under the message (diagnostics of a pipeline file, the tail of a failed stage).
    details: Vec<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), details: Vec::new(), source: None }
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }

    /// Prefixes the message with what was being done: `creating load balancer hello-prod1: <message>`.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn details(&self) -> &[String] {
        &self.details
    }

    pub fn input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Input, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn aws(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Aws, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Adds context to any fallible result whose error is ours.
pub trait ResultExt<T> {
    fn context(self, what: impl fmt::Display) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.context(what))
    }
}
