//! AWS failed, could not be reached, or denied the call (exit 6); a call that says the named resource does not exist
//! is exit 3. Made once, at the boundary (`release-aws`), from the SDK's error and the service's error code.

use std::fmt;

use super::ErrorKind;

/// How a call to AWS failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Aws {
    /// A notification sink did not answer in time.
    SinkTimeout {
        /// How long it was given.
        within: std::time::Duration,
    },
    /// A Route53 change was not INSYNC in time, and the records read back do not hold its weights.
    NotInSync {
        /// The change id.
        change: String,
        /// How long it was waited for.
        after: std::time::Duration,
    },
    /// No zone of the cluster's subnets could launch the rest of the instances (capacity, or the type not offered).
    NoCapacity {
        /// How many instances are missing.
        shortfall: u32,
        /// The instance type.
        instance_type: String,
        /// Each zone tried and why it could not (`us-east-1a: InsufficientInstanceCapacity`).
        zones: Vec<String>,
    },
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
            Aws::SinkTimeout { within } => write!(f, "no answer within {}s", within.as_secs()),
            Aws::NotInSync { change, after } => {
                write!(f, "route53 change {change} is not in sync after {} and the records do not hold the new weights", crate::model::clock::format_duration(*after))
            }
            Aws::NoCapacity { shortfall, instance_type, zones } => write!(f, "no zone could launch {shortfall} more {instance_type}: {}", zones.join(", ")),
            Aws::Call { operation, code, message, .. } => write!(f, "{operation}: {code}: {message}"),
        }
    }
}
