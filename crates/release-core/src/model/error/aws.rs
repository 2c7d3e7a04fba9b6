//! AWS failed, could not be reached, or denied the call (exit 6); a call that says the named resource does not exist
//! is exit 3. Made once, at the boundary (`release-aws`), from the SDK's error and the service's error code.

use std::fmt;

use super::ErrorKind;

/// How a call to AWS failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Aws {
    /// The service answered with an error code.
    Call {
        /// The operation (`ec2 RunInstances`).
        operation: String,
        /// The service's error code (`InvalidSubnetID.NotFound`).
        code: String,
        /// What the service said.
        message: String,
        /// Whether the code says the named resource does not exist (exit 3 instead of 6).
        missing: bool,
    },
}

impl Aws {
    /// Not-found for a call that says the resource is missing; AWS otherwise.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Aws::Call { missing: true, .. } => ErrorKind::NotFound,
            _ => ErrorKind::Aws,
        }
    }
}

impl fmt::Display for Aws {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Aws::Call { operation, code, message, .. } => write!(f, "{operation}: {code}: {message}"),
        }
    }
}
