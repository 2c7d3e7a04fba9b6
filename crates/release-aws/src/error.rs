//! SDK errors into one-line core errors: which call, which AWS error code, what AWS said.

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use release_core::{Error, ErrorKind};

pub(crate) fn sdk<E>(op: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = match &err {
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            format!("{op}: timed out connecting to AWS; check --endpoint-url / AWS_ENDPOINT_URL and the network")
        }
        SdkError::DispatchFailure(_) => format!(
            "{op}: cannot reach AWS ({}); check --endpoint-url / AWS_ENDPOINT_URL and the network",
            root_cause(&err)
        ),
        SdkError::TimeoutError(_) => format!("{op}: AWS did not answer in time"),
        SdkError::ServiceError(ctx) => match (err.code(), err.message()) {
            (Some(code), Some(msg)) => format!("{op}: {code}: {msg}"),
            (Some(code), None) => format!("{op}: {code}"),
            // An answer the SDK could not read (an emulator's error page, a proxy): its HTTP status says enough.
            _ => match ctx.raw().status().as_u16() {
                code @ (401 | 403) => {
                    format!("{op}: AccessDenied (HTTP {code}); check the credentials and the IAM policy (`release iam-policy`)")
                }
                code => format!("{op}: HTTP {code} with an unreadable error body"),
            },
        },
        _ => format!("{op}: {}", DisplayErrorContext(&err)),
    };
    let message = message.replace('\n', " ");
    Error::new(ErrorKind::Aws, message).with_source(err)
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
