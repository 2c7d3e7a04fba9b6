//! Counts every HTTP attempt made to AWS, by service and operation, so that commands can report how many calls
//! they made and tests can prove call counts do not grow with the fleet.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

#[derive(Clone, Debug, Default)]
pub struct CallCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl CallCounter {
    /// Calls so far, as `Service:Operation` -> attempts (retries count).
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap().clone()
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "release-call-counter"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(m) = cfg.load::<Metadata>() {
            // In order, for finding which step made a call: `RELEASE_LOG=release_aws::calls=trace`.
            tracing::trace!("aws call {}:{}", m.service(), m.name());
            *self.0.lock().unwrap().entry(format!("{}:{}", m.service(), m.name())).or_default() += 1;
        }
        Ok(())
    }
}
