//! SDK errors into one-line core errors: which call, which AWS error code, what AWS said; classified once, here,
//! by the error code into a kind (exit code) and a [`Cause`] the engine decides on. The message text is read only
//! where one code means several things (ELB's `InvalidInstance`/`InvalidTarget`: unknown id, or not running).

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use release_core::model::error::Cause;
use release_core::{Error, ErrorKind};

/// What an AWS error code means to the engine. Codes are the services' documented ones.
pub(crate) fn classify(code: &str) -> (ErrorKind, Option<Cause>) {
    match code {
        // A named resource does not exist.
        "LoadBalancerNotFound" | "AccessPointNotFound" | "TargetGroupNotFound" | "ResourceNotFoundException" | "NoSuchHostedZone"
        | "InvalidSubnetID.NotFound" | "InvalidAMIID.NotFound" | "InvalidAMIID.Unavailable" | "InvalidGroup.NotFound"
        | "InvalidVpcID.NotFound" | "NoSuchChange" | "InvalidSnapshot.NotFound"
        // SNS: no such topic; SSM: no such parameter (or version).
        | "NotFound" | "ParameterNotFound" | "ParameterVersionNotFound" => (ErrorKind::NotFound, Some(Cause::Missing)),
        // EC2's eventual consistency: an id created moments ago is not visible yet everywhere.
        "InvalidInstanceID.NotFound" => (ErrorKind::Aws, Some(Cause::NotYetVisible)),
        "ConditionalCheckFailedException" | "TransactionCanceledException" => (ErrorKind::Aws, Some(Cause::ConditionFailed)),
        "InsufficientInstanceCapacity" | "InsufficientCapacity" => (ErrorKind::Aws, Some(Cause::Capacity)),
        "Unsupported" => (ErrorKind::Aws, Some(Cause::Unsupported)),
        "AuthFailure" | "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" | "UnrecognizedClientException"
        | "InvalidClientTokenId" | "SignatureDoesNotMatch" | "ExpiredToken" | "ExpiredTokenException" | "InvalidAccessKeyId"
        // SNS: the caller may not publish, or may not use the topic's KMS key.
        | "AuthorizationError" | "KMSAccessDenied" => {
            (ErrorKind::Aws, Some(Cause::Denied))
        }
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "ProvisionedThroughputExceededException"
        | "PriorRequestNotComplete" | "Throttled" | "KMSThrottling" => (ErrorKind::Aws, Some(Cause::Throttled)),
        "InvalidSnapshot.InUse" | "DependencyViolation" | "ResourceInUse" | "ResourceInUseException" => (ErrorKind::Aws, Some(Cause::InUse)),
        // The endpoint has no such operation (a region or partition without it, an emulator): not a refusal.
        "InvalidAction" | "UnsupportedOperation" | "UnknownOperationException" | "NotImplemented" => (ErrorKind::Aws, Some(Cause::UnknownOperation)),
        _ => (ErrorKind::Aws, None),
    }
}

/// Whether the endpoint does not implement the operation at all: AWS's codes for an unknown action, or an answer that
/// is no AWS error document with HTTP 500/501 (moto's "not implemented" page; AWS itself always answers with a code).
pub(crate) fn unimplemented<E>(err: &SdkError<E, HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(ctx) => match err.code() {
            Some(c) => classify(c).1 == Some(Cause::UnknownOperation),
            None => matches!(ctx.raw().status().as_u16(), 500 | 501),
        },
        _ => false,
    }
}

/// The load balancers answer an instance id EC2 does not know (yet) with a code they also use for an instance
/// that is not running or in another VPC; only the message says which: "Could not find EC2 instance i-…" (ELB),
/// "The specified target does not exist, …" (ELBv2).
fn unknown_instance(code: &str, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    matches!(code, "InvalidInstance" | "InvalidTarget") && (m.contains("could not find") || m.contains("does not exist") || m.contains("not found"))
}

pub(crate) fn sdk<E>(op: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let mut code = None;
    let message = match &err {
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            format!("{op}: timed out connecting to AWS; check --endpoint-url / AWS_ENDPOINT_URL and the network")
        }
        SdkError::DispatchFailure(_) => {
            format!("{op}: cannot reach AWS ({}); check --endpoint-url / AWS_ENDPOINT_URL and the network", root_cause(&err))
        }
        SdkError::TimeoutError(_) => format!("{op}: AWS did not answer in time"),
        SdkError::ServiceError(ctx) => match (err.code(), err.message()) {
            (Some(c), Some(msg)) => {
                code = Some(c.to_owned());
                format!("{op}: {c}: {msg}")
            }
            (Some(c), None) => {
                code = Some(c.to_owned());
                format!("{op}: {c}")
            }
            // An answer the SDK could not read (an emulator's error page, a proxy): its HTTP status says enough.
            _ => match ctx.raw().status().as_u16() {
                status @ (401 | 403) => {
                    code = Some("AccessDenied".to_owned());
                    format!("{op}: AccessDenied (HTTP {status}); check the credentials and the IAM policy (`release iam-policy`)")
                }
                status => format!("{op}: HTTP {status} with an unreadable error body"),
            },
        },
        _ => format!("{op}: {}", DisplayErrorContext(&err)),
    };
    let message = message.replace('\n', " ");
    let (kind, mut cause) = code.as_deref().map(classify).unwrap_or((ErrorKind::Aws, None));
    if code.as_deref().is_some_and(|c| unknown_instance(c, err.message().unwrap_or(""))) {
        cause = Some(Cause::NotYetVisible);
    }
    let message = if cause == Some(Cause::Denied) && !message.contains("release iam-policy") {
        format!("{message}; check the credentials and the IAM policy (`release iam-policy`)")
    } else {
        message
    };
    let mut e = Error::new(kind, message).with_source(err);
    if let Some(c) = cause {
        e = e.with_cause(c);
    }
    if let Some(c) = code {
        e = e.with_code(c);
    }
    e
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Builders of SDK shapes fail only when a required field is missing: a bug here, not the user's.
pub(crate) fn build<T>(what: &str, r: Result<T, aws_smithy_types::error::operation::BuildError>) -> Result<T, Error> {
    r.map_err(|e| Error::internal(format!("building {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::unknown_instance;

    #[test]
    fn only_an_unknown_id_is_not_yet_visible() {
        assert!(unknown_instance("InvalidInstance", "Could not find EC2 instance i-0123456789abcdef0."));
        assert!(unknown_instance("InvalidTarget", "The specified target does not exist, is not in the same VPC as the target group, or has an unsupported instance type."));
        assert!(!unknown_instance("InvalidTarget", "The following targets are not in a running state and cannot be registered: 'i-0123456789abcdef0'"));
        assert!(!unknown_instance("InvalidInstance", "EC2 instance i-0123456789abcdef0 is not in running state."));
        assert!(!unknown_instance("ValidationError", "Instance ID 'x' does not exist"));
    }
}
