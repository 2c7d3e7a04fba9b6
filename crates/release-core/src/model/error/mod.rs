//! Errors as one typed enum per failure family (issue 21; nextest's `errors.rs` is the model): every failure is a
//! variant of a `#[non_exhaustive]` family ([`Input`], [`NotFound`], [`Refused`], [`LockHeld`], [`Aws`], [`Stage`],
//! [`Deploy`], [`Internal`], or one of [`Failure`]'s own) with structured fields, and says what went wrong in one
//! lowercase line rendered from them. The kind, and so the process exit code, is derived from the variant, never
//! from message text; the codes are a contract (README "Exit codes").
//!
//! A site builds its variant (`Err(NotFound::Ami { commit }.into())`); there is no constructor from a kind and a
//! message, so a new situation is a new variant (or an existing one whose rendered text is the same). What was
//! being done is added with [`Error::context`]; an error told again with what came after it (a promote's clean-up,
//! a hook's traffic sent back) is [`Error::retold`] as a variant that carries its message and, where the kind must
//! stay the failure's, its kind.
//!
//! AWS errors are classified once, at the boundary (`release-aws`), by their error code into a [`Cause`]; the
//! engine decides on causes and never searches message text.

use std::fmt;

mod aws;
mod deploy;
mod input;
mod internal;
mod lock;
mod not_found;
mod refused;
mod stage;

pub use aws::Aws;
pub use deploy::Deploy;
pub use input::Input;
pub use internal::Internal;
pub use lock::LockHeld;
pub use not_found::NotFound;
pub use refused::Refused;
pub use stage::Stage;

/// Exit codes of the `release` binary; documented in the README.
pub mod exit {
    /// Success, including "nothing to do".
    pub const OK: i32 = 0;
    /// Anything unexpected: a bug, an I/O failure on this machine.
    pub const INTERNAL: i32 = 1;
    /// Bad command line, pipeline file or argument value.
    pub const INPUT: i32 = 2;
    /// A named thing does not exist: commit, AMI, environment, cluster, load balancer, hosted zone.
    pub const NOT_FOUND: i32 = 3;
    /// A safety check refused the action (e.g. promoting the live cluster, switching to an unhealthy one).
    pub const REFUSED: i32 = 4;
    /// Another operator holds the environment's lock, or this run lost it.
    pub const LOCK_HELD: i32 = 5;
    /// AWS (or the emulator) failed, could not be reached, or denied the call.
    pub const AWS: i32 = 6;
    /// A build, test or Packer stage ran and failed.
    pub const STAGE_FAILED: i32 = 7;
    /// A deploy ran and failed (health timeout, an alarm, a failing hook).
    pub const DEPLOY_FAILED: i32 = 8;
    /// Interrupted by Ctrl-C / SIGTERM.
    pub const INTERRUPTED: i32 = 130;
}

/// What kind of failure an error is; decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A bug or a local failure.
    Internal,
    /// Bad input.
    Input,
    /// Something named does not exist.
    NotFound,
    /// A safety check said no.
    Refused,
    /// The lock is someone else's.
    LockHeld,
    /// AWS failed.
    Aws,
    /// build, test or packer failed.
    StageFailed,
    /// A deploy failed.
    DeployFailed,
    /// Ctrl-C / SIGTERM.
    Interrupted,
    /// A checkpoint hook stopped the engine where a crash would (tests only): nothing may be cleaned up.
    Crash,
    /// A waiting command left the queue because a newer one makes it moot (`queue = "latest"`): not a failure.
    Superseded,
}

impl ErrorKind {
    /// The process exit code for this kind (README "Exit codes").
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
            ErrorKind::Superseded => exit::OK,
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
            ErrorKind::Superseded => "superseded",
        }
    }
}

/// Why a cloud call failed, as the engine needs to know it. Set by the port implementations from the service's
/// error code; `None` when the failure needs no special handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The named resource does not exist (load balancer, subnet, table, zone, image).
    Missing,
    /// A conditional write found the item in another state: someone else holds the lock or the record.
    ConditionFailed,
    /// An id created moments ago is not visible yet (EC2 eventual consistency: `InvalidInstanceID.NotFound`).
    NotYetVisible,
    /// No capacity for the instance type in that zone right now (`InsufficientInstanceCapacity`).
    Capacity,
    /// The instance type is not offered in that zone (`Unsupported`).
    Unsupported,
    /// A load balancer refused to register an instance it does not see running (ELB `InvalidInstance`, ELBv2
    /// `InvalidTarget`: "not in a running state"): pending, gone, or its view lagging EC2's.
    NotRunning,
    /// Credentials or permissions refused the call.
    Denied,
    /// Throttled, and the retries ran out.
    Throttled,
    /// The resource is still in use (a snapshot of an image being deregistered, a group with members).
    InUse,
    /// Something of that name exists already (`AlreadyExists`, a launch template name taken).
    AlreadyExists,
    /// The service refused the request's values (`ValidationError`: capacity outside min..max, a bad version).
    Invalid,
    /// A scaling activity is in progress on the group (`ScalingActivityInProgress`): retry when it is over.
    ScalingInProgress,
    /// An account or service quota is reached (`LimitExceeded`).
    LimitExceeded,
    /// A client token was used before with other parameters (`IdempotentParameterMismatch`).
    TokenReused,
    /// The endpoint does not have the operation at all (`InvalidAction`, `UnsupportedOperation`: a region, partition
    /// or emulator without it), as opposed to refusing this call.
    UnknownOperation,
}

/// An error: what went wrong, as one variant of a failure family ([`Failure`]) with structured fields, plus what
/// was being done when it happened (context), detail lines and a classified cause. The kind, and so the exit code,
/// is derived from the variant, never from message text. `{e}` is the one-line message; `{e:#}` adds the detail
/// lines (a pipeline file's problems, a stage's output); `{e:?}` (what a `main` returning `Result` prints) is the
/// message, the kind and its exit code, then the details.
pub struct Error {
    failure: Failure,
    /// The rendered message: the context prefixes, then the failure's own line. Rendered once, when the error is
    /// made or given context, so that `message()` can lend it.
    message: String,
    /// Extra lines shown under the message (diagnostics of a pipeline file, the tail of a failed stage).
    details: Vec<String>,
    cause: Option<Cause>,
    /// The service's error code, for messages and JSON (`LoadBalancerNotFound`).
    code: Option<String>,
    /// For a failed deploy: whether the environment was put back as it was.
    rolled_back: Option<bool>,
    /// What a command that failed after it opened its record can still say (its release id, its hooks): fields
    /// of its JSON report, printed next to `error` as a rolled-back rollout's report is.
    report: Option<Box<serde_json::Map<String, serde_json::Value>>>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// What went wrong: one variant per failure family, each family a `#[non_exhaustive]` enum with structured fields
/// (nextest's `errors.rs` is the model). The family decides the kind and so the exit code.
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure {
    /// Bad command line, pipeline file or argument value (exit 2).
    Input(Input),
    /// A named thing does not exist (exit 3).
    NotFound(NotFound),
    /// A safety check said no; nothing was changed (exit 4).
    Refused(Refused),
    /// Another operator holds the lock, or this run lost it (exit 5).
    LockHeld(LockHeld),
    /// AWS failed, could not be reached, or denied the call (exit 6; a missing resource is exit 3).
    Aws(Aws),
    /// A build, test or Packer stage ran and failed (exit 7).
    Stage(Stage),
    /// A deploy ran and failed: health, an alarm, a hook (exit 8; what a promote did after another failure keeps
    /// that one's kind).
    Deploy(Deploy),
    /// A bug or a failure on this machine (exit 1).
    Internal(Internal),
    /// Ctrl-C or SIGTERM stopped the command (exit 130).
    Interrupted {
        /// What was stopped, and what is left for a re-run: `interrupted; the record stays open, run it again`.
        what: String,
    },
    /// A test's checkpoint hook stopped the engine where a crash would: nothing may be cleaned up (tests only).
    Crash {
        /// The checkpoint (`launched`, `registered`, …).
        at: String,
    },
    /// A waiting command left the queue because a newer one makes it moot (`queue = "latest"`): not a failure.
    Superseded {
        /// Which command superseded it, and what the waiting one would have done.
        by: String,
    },
}

impl Failure {
    /// The kind, and so the exit code: from the family (and for AWS, whether it says the resource is missing).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Failure::Input(_) => ErrorKind::Input,
            Failure::NotFound(_) => ErrorKind::NotFound,
            Failure::Refused(_) => ErrorKind::Refused,
            Failure::LockHeld(_) => ErrorKind::LockHeld,
            Failure::Aws(a) => a.kind(),
            Failure::Stage(_) => ErrorKind::StageFailed,
            Failure::Deploy(d) => d.kind(),
            Failure::Internal(_) => ErrorKind::Internal,
            Failure::Interrupted { .. } => ErrorKind::Interrupted,
            Failure::Crash { .. } => ErrorKind::Crash,
            Failure::Superseded { .. } => ErrorKind::Superseded,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Input(e) => e.fmt(f),
            Failure::NotFound(e) => e.fmt(f),
            Failure::Refused(e) => e.fmt(f),
            Failure::LockHeld(e) => e.fmt(f),
            Failure::Aws(e) => e.fmt(f),
            Failure::Stage(e) => e.fmt(f),
            Failure::Deploy(e) => e.fmt(f),
            Failure::Internal(e) => e.fmt(f),
            Failure::Interrupted { what } => f.write_str(what),
            Failure::Crash { at } => write!(f, "crash at {at}"),
            Failure::Superseded { by } => f.write_str(by),
        }
    }
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        let message = failure.to_string();
        Self { failure, message, details: Vec::new(), cause: None, code: None, rolled_back: None, report: None, source: None }
    }
}

macro_rules! family {
    ($($ty:ident),*) => {$(
        impl From<$ty> for Failure {
            fn from(e: $ty) -> Self {
                Failure::$ty(e)
            }
        }
        impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error::from(Failure::$ty(e))
            }
        }
    )*};
}
family!(Input, NotFound, Refused, LockHeld, Aws, Stage, Deploy, Internal);

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// What went wrong, as a typed variant of its family.
    pub fn failure(&self) -> &Failure {
        &self.failure
    }

    /// Keeps the underlying error for `-vv` output.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Lines shown under the message.
    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }

    /// Classifies the error (ports do this from the service's error code).
    pub fn with_cause(mut self, cause: Cause) -> Self {
        self.cause = Some(cause);
        self
    }

    /// The service's error code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Says whether a failed deploy put the environment back.
    pub fn with_rolled_back(mut self, rolled_back: bool) -> Self {
        self.rolled_back = Some(rolled_back);
        self
    }

    /// Attaches the fields of the failed command's report (an object; anything else is ignored).
    pub fn with_report(mut self, report: serde_json::Value) -> Self {
        if let serde_json::Value::Object(m) = report {
            self.report = Some(Box::new(m));
        }
        self
    }

    /// The fields of the failed command's report, if it had got that far.
    pub fn report(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.report.as_deref()
    }

    /// Prefixes the message with what was being done: `creating load balancer hello-prod1: <message>`.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// The same error told as `failure`, a variant that carries this error's message (and its kind where that must
    /// stay) and says what was done after it (a promote's clean-up: [`Deploy::Removed`]; a failed hook's traffic
    /// sent back: [`Deploy::HookSwitchedBack`]); its details, cause, code, source and report stay.
    pub fn retold(mut self, failure: impl Into<Failure>) -> Self {
        self.failure = failure.into();
        self.message = self.failure.to_string();
        self
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.failure.kind()
    }

    /// The one-line message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Detail lines.
    pub fn details(&self) -> &[String] {
        &self.details
    }

    /// The documented exit code of its kind (what the `release` command exits with).
    pub fn exit_code(&self) -> i32 {
        self.kind().exit_code()
    }

    /// The classified cause, if any.
    pub fn cause(&self) -> Option<Cause> {
        self.cause
    }

    /// Whether the cause is `cause`.
    pub fn is(&self, cause: Cause) -> bool {
        self.cause == Some(cause)
    }

    /// The service's error code, if any.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// For a failed deploy: whether the environment was put back.
    pub fn rolled_back(&self) -> Option<bool> {
        self.rolled_back
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if f.alternate() {
            for d in &self.details {
                write!(f, "\n  {d}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?}, exit {}", self.message, self.kind(), self.kind().exit_code())?;
        if let Some(c) = &self.code {
            write!(f, ", {c}")?;
        }
        f.write_str(")")?;
        for d in &self.details {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Adds context to any fallible result whose error is ours.
pub trait ResultExt<T> {
    /// Prefixes the error's message with `what`.
    fn context(self, what: impl fmt::Display) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.context(what))
    }
}
