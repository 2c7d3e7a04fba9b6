//! The real notifier: each sink kind of `[notify]` to its adapter (release-notify for webhook, slack and command,
//! release-aws for sns), a webhook's secret from the environment (`env:NAME`) or SSM (`ssm:/path`); and the tee
//! that hands every event to [`App::subscribe`](crate::App::subscribe) receivers too.
//!
//! Errors cross the port without the sink's label: core puts them beside it (`notify_failures`: sink, event,
//! error; the log line `notify: <sink> did not take …: <error>`), as it does with its own timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::model::error::{Aws as AwsError, Failure, Input};
use crate::model::event::Event;
use crate::ports::Notifier;
use crate::model::pipeline::{SecretRef, Sink, SinkKind};
use crate::reexport::adapters::{Aws, LocalSinks};
use crate::Result;

/// Delivers events to the sinks of a pipeline's `[notify]` (webhook, slack, command, sns), as the `release`
/// command does. [`App::connect`](crate::App::connect) installs it; build one yourself only for a hand-made
/// [`Session`](crate::engine::Session).
pub struct SinkNotifier {
    aws: Aws,
    /// Built at the first delivery: commands that notify nobody never load the system's certificates.
    local: OnceLock<LocalSinks>,
    /// `ssm:` secrets read so far by this process (one read per parameter, not one per event).
    secrets: Mutex<HashMap<String, String>>,
}

impl SinkNotifier {
    /// A notifier reading `ssm:` secrets and publishing to SNS through `aws`.
    pub(crate) fn new(aws: Aws) -> Self {
        Self { aws, local: OnceLock::new(), secrets: Mutex::default() }
    }

    fn local(&self) -> &LocalSinks {
        self.local.get_or_init(LocalSinks::new)
    }

    /// The HMAC key a webhook's `secret` names; an error names the variable or parameter, never a value.
    async fn secret(&self, secret: &SecretRef) -> Result<String> {
        match secret {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(v),
                Ok(_) => Err(Input::SecretEmpty { var: name.clone() }.into()),
                Err(_) => Err(Input::SecretUnset { var: name.clone() }.into()),
            },
            SecretRef::Ssm(path) => {
                if let Some(v) = self.secrets.lock().unwrap().get(path) {
                    return Ok(v.clone());
                }
                let value = self.aws.parameter(path).await.map_err(|e| e.context(format!("reading its secret ssm:{path}")))?;
                self.secrets.lock().unwrap().insert(path.clone(), value.clone());
                Ok(value)
            }
        }
    }
}

#[async_trait]
impl Notifier for SinkNotifier {
    async fn deliver(&self, sink: &Sink, event: &Event) -> Result<()> {
        let result = match &sink.kind {
            SinkKind::Webhook { url, secret } => {
                let key = match secret {
                    Some(s) => Some(self.secret(s).await?),
                    None => None,
                };
                self.local().webhook(&sink.label, url, key.as_deref().map(str::as_bytes), event).await
            }
            SinkKind::Slack { url } => self.local().slack(&sink.label, url, event).await,
            SinkKind::Command { command } => self.local().command(&sink.label, command, event).await,
            SinkKind::Sns { topic } => self.aws.publish_event(topic, event).await,
        };
        // The adapters name the sink first; core names it already.
        result.map_err(|e| match e.failure() {
            Failure::Aws(AwsError::Sink { sink: Some(label), what }) if *label == sink.label => AwsError::Sink { sink: None, what: what.clone() }.into(),
            _ => e,
        })
    }
}

/// A notifier that hands every event to a broadcast channel and delivers to the sinks through `inner`.
pub(crate) struct Tee {
    pub inner: Arc<dyn Notifier>,
    pub events: broadcast::Sender<Event>,
}

#[async_trait]
impl Notifier for Tee {
    async fn deliver(&self, sink: &Sink, event: &Event) -> Result<()> {
        self.inner.deliver(sink, event).await
    }

    fn sent(&self, event: &Event) {
        self.inner.sent(event);
        // No receiver is not an error: nobody subscribed.
        let _ = self.events.send(event.clone());
    }
}
