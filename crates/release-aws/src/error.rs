//! SDK errors into one-line core errors: which call, which AWS error code, what AWS said; classified once, here,
//! by the error code into a kind (exit code) and a [`Cause`] the engine decides on. The message text is read only
//! where one code means several things (ELB's `InvalidInstance`/`InvalidTarget`: unknown id, or not running).

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use release_core::model::error::Cause;
use release_core::model::error::{Aws, Internal};
use release_core::Error;

/// What an AWS error code means to the engine (a missing resource is also exit 3: [`Aws::Call`]'s `missing`). Codes
/// are the services' documented ones.
pub(crate) fn classify(code: &str) -> Option<Cause> {
    match code {
        // A named resource does not exist.
        "LoadBalancerNotFound" | "AccessPointNotFound" | "TargetGroupNotFound" | "ResourceNotFoundException" | "NoSuchHostedZone"
        | "InvalidSubnetID.NotFound" | "InvalidAMIID.NotFound" | "InvalidAMIID.Unavailable" | "InvalidGroup.NotFound"
        | "InvalidVpcID.NotFound" | "NoSuchChange" | "InvalidSnapshot.NotFound"
        | "InvalidLaunchTemplateId.NotFound" | "InvalidLaunchTemplateName.NotFoundException" | "InvalidLaunchTemplateId.VersionNotFound"
        // SNS: no such topic; SSM: no such parameter (or version).
        | "NotFound" | "ParameterNotFound" | "ParameterVersionNotFound"
        // IAM: no such instance profile.
        | "NoSuchEntity" => Some(Cause::Missing),
        // EC2's eventual consistency: an id created moments ago is not visible yet everywhere.
        "InvalidInstanceID.NotFound" => Some(Cause::NotYetVisible),
        "ConditionalCheckFailedException" | "TransactionCanceledException" => Some(Cause::ConditionFailed),
        "InsufficientInstanceCapacity" | "InsufficientCapacity" => Some(Cause::Capacity),
        "Unsupported" => Some(Cause::Unsupported),
        "AuthFailure" | "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" | "UnrecognizedClientException"
        | "InvalidClientTokenId" | "SignatureDoesNotMatch" | "ExpiredToken" | "ExpiredTokenException" | "InvalidAccessKeyId"
        // SNS: the caller may not publish, or may not use the topic's KMS key.
        | "AuthorizationError" | "KMSAccessDenied" => Some(Cause::Denied),
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "ProvisionedThroughputExceededException"
        | "PriorRequestNotComplete" | "Throttled" | "KMSThrottling" => Some(Cause::Throttled),
        "InvalidSnapshot.InUse" | "DependencyViolation" | "ResourceInUse" | "ResourceInUseException" => Some(Cause::InUse),
        // Auto Scaling and launch templates (issue 22). A ValidationError naming a group that does not exist is
        // made missing by `unknown_group`.
        "AlreadyExists" | "InvalidLaunchTemplateName.AlreadyExistsException" => Some(Cause::AlreadyExists),
        "ValidationError" => Some(Cause::Invalid),
        "ScalingActivityInProgress" => Some(Cause::ScalingInProgress),
        "LimitExceeded" | "LaunchTemplateLimitExceeded" | "VersionLimitExceeded" => Some(Cause::LimitExceeded),
        "IdempotentParameterMismatch" => Some(Cause::TokenReused),
        // The endpoint has no such operation (a region or partition without it, an emulator): not a refusal.
        "InvalidAction" | "UnsupportedOperation" | "UnknownOperationException" | "NotImplemented" => Some(Cause::UnknownOperation),
        _ => None,
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
            Some(c) => classify(c) == Some(Cause::UnknownOperation),
            None => matches!(ctx.raw().status().as_u16(), 500 | 501),
        },
        _ => false,
    }
}

/// The load balancers answer an instance id EC2 does not know (yet) with a code they also use for an instance
/// that is not running or in another VPC; only the message says which: "Could not find EC2 instance i-…" (ELB),
/// "The specified target does not exist, …" (ELBv2).
fn unknown_instance(code: &str, message: &str) -> bool {
    matches!(code, "InvalidInstance" | "InvalidTarget")
        && ["could not find", "does not exist", "not found"].iter().any(|t| message.to_ascii_lowercase().contains(t))
}

/// Auto Scaling answers a group name it does not know with the code it uses for bad values; only the message says
/// which: "AutoScalingGroup name not found - …", "Group … not found".
fn unknown_group(operation: &str, code: &str, message: &str) -> bool {
    operation.starts_with("autoscaling ") && code == "ValidationError" && message.to_ascii_lowercase().contains("not found")
}

/// The same codes for an instance the load balancer does not see running: "EC2 instance i-… is not in running
/// state." (ELB), "The following targets are not in a running state and cannot be registered: …" (ELBv2).
fn not_running(code: &str, message: &str) -> bool {
    matches!(code, "InvalidInstance" | "InvalidTarget") && message.to_ascii_lowercase().contains("running state")
}

pub(crate) fn sdk<E>(op: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let operation = op.to_owned();
    let one_line = |s: &str| s.replace('\n', " ");
    let mut code = None;
    let mut cause = None;
    let failure = match &err {
        SdkError::DispatchFailure(d) if d.is_timeout() => Aws::ConnectTimeout { operation },
        SdkError::DispatchFailure(_) => Aws::Unreachable { operation, why: one_line(&root_cause(&err)) },
        SdkError::TimeoutError(_) => Aws::NoAnswer { operation },
        SdkError::ServiceError(ctx) => match err.code() {
            Some(c) => {
                code = Some(c.to_owned());
                cause = classify(c);
                let message = err.message().map(one_line);
                if unknown_instance(c, err.message().unwrap_or("")) {
                    cause = Some(Cause::NotYetVisible);
                } else if not_running(c, err.message().unwrap_or("")) {
                    cause = Some(Cause::NotRunning);
                }
                if unknown_group(&operation, c, err.message().unwrap_or("")) {
                    cause = Some(Cause::Missing);
                }
                let missing = cause == Some(Cause::Missing);
                match (cause, message) {
                    (Some(Cause::Denied), message) => Aws::Denied { operation, code: c.to_owned(), message },
                    (_, Some(message)) => Aws::Call { operation, code: c.to_owned(), message, missing },
                    (_, None) => Aws::CallCode { operation, code: c.to_owned(), missing },
                }
            }
            // An answer the SDK could not read (an emulator's error page, a proxy): its HTTP status says enough.
            None => match ctx.raw().status().as_u16() {
                status @ (401 | 403) => {
                    code = Some("AccessDenied".to_owned());
                    cause = Some(Cause::Denied);
                    Aws::DeniedStatus { operation, status }
                }
                status => Aws::Unreadable { operation, status },
            },
        },
        _ => Aws::Sdk { operation, error: one_line(&DisplayErrorContext(&err).to_string()) },
    };
    let mut e = Error::from(failure).with_source(err);
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

/// A call that succeeded without what its answer must carry.
pub(crate) fn no_field(operation: &str, what: &str) -> Error {
    Aws::NoField { operation: operation.to_owned(), what: what.to_owned() }.into()
}

/// Builders of SDK shapes fail only when a required field is missing: a bug here, not the user's.
pub(crate) fn build<T>(what: &str, r: Result<T, aws_smithy_types::error::operation::BuildError>) -> Result<T, Error> {
    r.map_err(|e| Internal::SdkShape { what: what.to_owned(), error: e.to_string() }.into())
}

#[cfg(test)]
mod tests {
    use super::{not_running, unknown_instance};

    #[test]
    fn only_an_unknown_id_is_not_yet_visible() {
        assert!(unknown_instance("InvalidInstance", "Could not find EC2 instance i-0123456789abcdef0."));
        assert!(unknown_instance("InvalidTarget", "The specified target does not exist, is not in the same VPC as the target group, or has an unsupported instance type."));
        assert!(!unknown_instance("InvalidTarget", "The following targets are not in a running state and cannot be registered: 'i-0123456789abcdef0'"));
        assert!(!unknown_instance("InvalidInstance", "EC2 instance i-0123456789abcdef0 is not in running state."));
        assert!(!unknown_instance("ValidationError", "Instance ID 'x' does not exist"));
        assert!(not_running("InvalidTarget", "The following targets are not in a running state and cannot be registered: 'i-0123456789abcdef0'"));
        assert!(not_running("InvalidInstance", "EC2 instance i-0123456789abcdef0 is not in running state."));
        assert!(!not_running("InvalidTarget", "The specified target does not exist, is not in the same VPC as the target group, or has an unsupported instance type."));
    }

    #[test]
    fn only_a_group_not_found_is_missing() {
        use super::unknown_group;
        assert!(unknown_group("autoscaling UpdateAutoScalingGroup", "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup 'x' not found"));
        assert!(!unknown_group("autoscaling UpdateAutoScalingGroup", "ValidationError", "Desired capacity:5 must be between the specified min size:1 and max size:3"));
        assert!(!unknown_group("elbv2 CreateTargetGroup", "ValidationError", "not found"));
    }
}
