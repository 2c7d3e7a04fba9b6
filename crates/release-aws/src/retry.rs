//! What the SDK's retry layer must not retry. A zone out of capacity answers RunInstances with
//! `InsufficientInstanceCapacity` as HTTP 500, which the SDK's status-code classifier takes for a passing server
//! error and retries (six attempts with backoff) before the engine hears of it; the engine's answer to a zone
//! without capacity is another zone, at once.

use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction, RetryClassifierPriority};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use release_core::model::error::Cause;

use crate::error::classify;

/// Forbids retrying a RunInstances whose code says the zone cannot take the launch now (no capacity, or the type
/// not offered there): the engine launches that share elsewhere.
#[derive(Debug, Default)]
pub(crate) struct ZoneErrorsAreNotRetried;

impl ClassifyRetry for ZoneErrorsAreNotRetried {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(err)) = ctx.output_or_error() else { return RetryAction::NoActionIndicated };
        let code = err.as_operation_error().and_then(|e| e.downcast_ref::<aws_sdk_ec2::operation::run_instances::RunInstancesError>()).and_then(|e| e.code());
        match code.and_then(classify) {
            Some(Cause::Capacity | Cause::Unsupported) => RetryAction::RetryForbidden,
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "release: zone errors are not retried"
    }

    fn priority(&self) -> RetryClassifierPriority {
        // Any classifier forbidding a retry wins; running last also overrides the status-code classifier's verdict.
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}
