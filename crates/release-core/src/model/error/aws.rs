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
    /// The service answered with an error code and no message.
    CallCode {
        /// The operation (`ec2 RunInstances`).
        operation: String,
        /// The service's error code.
        code: String,
        /// Whether the code says the named resource does not exist (exit 3 instead of 6).
        missing: bool,
    },
    /// Credentials or permissions refused the call (the code classifies as [`Cause::Denied`](super::Cause::Denied)).
    Denied {
        /// The operation.
        operation: String,
        /// The service's error code (`UnauthorizedOperation`).
        code: String,
        /// What the service said, if anything.
        message: Option<String>,
    },
    /// An answer without a readable error document, with HTTP 401 or 403: denied.
    DeniedStatus {
        /// The operation.
        operation: String,
        /// The HTTP status.
        status: u16,
    },
    /// An answer without a readable error document (an emulator's error page, a proxy).
    Unreadable {
        /// The operation.
        operation: String,
        /// The HTTP status.
        status: u16,
    },
    /// Connecting to the endpoint timed out.
    ConnectTimeout {
        /// The operation.
        operation: String,
    },
    /// The endpoint could not be reached.
    Unreachable {
        /// The operation.
        operation: String,
        /// The innermost cause (`Connection refused (os error 111)`).
        why: String,
    },
    /// The call was sent but no answer came in time.
    NoAnswer {
        /// The operation.
        operation: String,
    },
    /// The SDK failed otherwise (building the request, reading the answer).
    Sdk {
        /// The operation.
        operation: String,
        /// The SDK's error, on one line.
        error: String,
    },
    /// A ledger table was created but did not become ACTIVE in time.
    TableNotActive {
        /// The table.
        table: String,
        /// How long it was waited for.
        waited: std::time::Duration,
    },
    /// A ledger item read back does not decode.
    LedgerItem {
        /// What the decoder said.
        error: String,
    },
    /// A call succeeded but its answer lacks what it must carry.
    NoField {
        /// The operation (`elbv2 CreateTargetGroup`).
        operation: String,
        /// What is missing (`target group`, `change id`).
        what: String,
    },
    /// A load balancer reports no hosted zone id and the region's classic ELB zone is unknown.
    NoElbZone {
        /// The load balancer.
        name: String,
        /// The region.
        region: String,
    },
    /// A load balancer or target group was created but describing it finds nothing.
    NotDescribable {
        /// What was created (`load balancer hello-prod1`).
        target: String,
    },
    /// A notification sink (webhook, slack, command) did not take an event. Exit 6, as for AWS: a remote service
    /// (or the sink's program) failed, not the user's input.
    Sink {
        /// The sink's label (`webhook https://hooks.example.com/…`), as the adapters name it; None where the caller
        /// names the sink itself (core's `notify_failures`, the log line).
        sink: Option<String>,
        /// What failed (`HTTP 500: boom`, `exit status 3: …`), without the secret or the full URL.
        what: String,
    },
    /// `release notify --test`: some sinks did not take the test event.
    SinksFailed {
        /// How many failed.
        failed: usize,
        /// How many were tried.
        total: usize,
    },
    /// A baked AMI is gone when its tags are read back.
    AmiVanished {
        /// The AMI.
        ami: String,
    },
    /// A baked AMI read back lacks the release tags just written.
    AmiUntagged {
        /// The AMI.
        ami: String,
    },
    /// A baked AMI did not become available in time.
    AmiNotAvailable {
        /// The AMI.
        ami: String,
        /// How long it was waited for (shown in whole minutes).
        after: std::time::Duration,
    },
}

impl Aws {
    /// Not-found for a call that says the resource is missing; AWS otherwise.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Aws::Call { missing: true, .. } | Aws::CallCode { missing: true, .. } => ErrorKind::NotFound,
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
            Aws::CallCode { operation, code, .. } => write!(f, "{operation}: {code}"),
            Aws::Denied { operation, code, message } => {
                write!(f, "{operation}: {code}")?;
                if let Some(m) = message {
                    write!(f, ": {m}")?;
                }
                f.write_str(DENIED_HINT)
            }
            Aws::DeniedStatus { operation, status } => write!(f, "{operation}: AccessDenied (HTTP {status}){DENIED_HINT}"),
            Aws::Unreadable { operation, status } => write!(f, "{operation}: HTTP {status} with an unreadable error body"),
            Aws::ConnectTimeout { operation } => write!(f, "{operation}: timed out connecting to AWS; {NETWORK_HINT}"),
            Aws::Unreachable { operation, why } => write!(f, "{operation}: cannot reach AWS ({why}); {NETWORK_HINT}"),
            Aws::NoAnswer { operation } => write!(f, "{operation}: AWS did not answer in time"),
            Aws::Sdk { operation, error } => write!(f, "{operation}: {error}"),
            Aws::TableNotActive { table, waited } => write!(f, "dynamodb table {table} was created but is not ACTIVE after {}s", waited.as_secs()),
            Aws::LedgerItem { error } => write!(f, "a ledger item is not in the expected shape: {error}"),
            Aws::NoField { operation, what } => write!(f, "{operation} returned no {what}"),
            Aws::NoElbZone { name, region } => write!(f, "load balancer {name} reports no hosted zone id and region {region} has no known ELB zone"),
            Aws::NotDescribable { target } => write!(f, "{target} was created but cannot be described"),
            Aws::Sink { sink: Some(sink), what } => write!(f, "{sink}: {what}"),
            Aws::Sink { sink: None, what } => f.write_str(what),
            Aws::SinksFailed { failed, total } => write!(f, "{failed} of {total} sink(s) did not take the test event"),
            Aws::AmiVanished { ami } => write!(f, "{ami} vanished after tagging"),
            Aws::AmiUntagged { ami } => write!(f, "{ami} does not carry the release tags after tagging"),
            Aws::AmiNotAvailable { ami, after } => write!(f, "{ami} is not available after {} minutes", after.as_secs() / 60),
        }
    }
}

/// What a refused call adds: where to look.
const DENIED_HINT: &str = "; check the credentials and the IAM policy (`release iam-policy`)";

/// What an unreachable endpoint adds.
const NETWORK_HINT: &str = "check --endpoint-url / AWS_ENDPOINT_URL and the network";
