//! SDK errors into one-line core errors: which call, which AWS error code, what AWS said; classified once, here,
//! by the error code (never by the message text) into a kind (exit code) and a [`Cause`] the engine decides on.

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use release_core::error::Cause;
use release_core::{Error, ErrorKind};

/// What an AWS error code means to the engine. Codes are the services' documented ones.
pub(crate) fn classify(code: &str) -> (ErrorKind, Option<Cause>) {
    match code {
        // A named resource does not exist.
        "LoadBalancerNotFound" | "AccessPointNotFound" | "TargetGroupNotFound" | "ResourceNotFoundException" | "NoSuchHostedZone"
        | "InvalidSubnetID.NotFound" | "InvalidAMIID.NotFound" | "InvalidAMIID.Unavailable" | "InvalidGroup.NotFound"
        | "InvalidVpcID.NotFound" | "NoSuchChange" | "InvalidSnapshot.NotFound" => (ErrorKind::NotFound, Some(Cause::Missing)),
        // EC2's eventual consistency: an id created moments ago is not visible yet everywhere.
        "InvalidInstanceID.NotFound" => (ErrorKind::Aws, Some(Cause::NotYetVisible)),
        "ConditionalCheckFailedException" | "TransactionCanceledException" => (ErrorKind::Aws, Some(Cause::ConditionFailed)),
        "InsufficientInstanceCapacity" | "InsufficientCapacity" => (ErrorKind::Aws, Some(Cause::Capacity)),
        "Unsupported" => (ErrorKind::Aws, Some(Cause::Unsupported)),
        "AuthFailure" | "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" | "UnrecognizedClientException"
        | "InvalidClientTokenId" | "SignatureDoesNotMatch" | "ExpiredToken" | "ExpiredTokenException" | "InvalidAccessKeyId" => {
            (ErrorKind::Aws, Some(Cause::Denied))
        }
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "ProvisionedThroughputExceededException"
        | "PriorRequestNotComplete" => (ErrorKind::Aws, Some(Cause::Throttled)),
        "InvalidSnapshot.InUse" | "DependencyViolation" | "ResourceInUse" | "ResourceInUseException" => (ErrorKind::Aws, Some(Cause::InUse)),
        _ => (ErrorKind::Aws, None),
    }
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
    let (kind, cause) = code.as_deref().map(classify).unwrap_or((ErrorKind::Aws, None));
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
