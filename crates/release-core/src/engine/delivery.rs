//! Deploy events and their delivery to the sinks of `[notify]` (webhook, slack, sns, command).
//!
//! Every transition of a ledger record is an [`Event`]: queued, started, a step (launched, healthy, switched, ...),
//! succeeded, failed, rolled back, lost-lock, superseded, cancelled, interrupted, refused. The runner and the queue emit
//! them; [`Delivery`] hands each to every sink whose `on` filter takes it, through the [`Notifier`] port.
//!
//! Delivery never blocks or fails a deploy: each event goes out on a task of its own, with a timeout per attempt
//! and a bounded number of retries; the operation waits for what is still in flight only once, at its end, and
//! at most [`SINK_TIMEOUT`]. A failed delivery is logged and noted on the ledger record (`notify_failures`).
//!
//! Each sink gets an operation's events in the order they happened: an event's task starts delivering once the
//! one before it, for the same sink, is done (delivered, given up after its retries, or abandoned at the end), so
//! a slow or retried `started` is never overtaken by its `succeeded`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::model::clock::Clock;
use crate::model::error::Aws;
use crate::model::event::{Event, EventKind};
use crate::model::ledger::NotifyFailure;
use crate::model::pipeline::NotifySettings;
use crate::ports::Notifier;

/// How long one delivery attempt may take.
pub const SINK_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per event and sink (the first and the retries).
pub const ATTEMPTS: u32 = 3;

/// The events of one operation on their way out: started now, waited for once at its end.
#[derive(Clone)]
pub struct Delivery {
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn Clock>,
    settings: NotifySettings,
    /// (sink label, event kind, its delivery task).
    in_flight: Arc<Mutex<Vec<(String, EventKind, tokio::task::JoinHandle<Option<NotifyFailure>>)>>>,
    failures: Arc<Mutex<Vec<NotifyFailure>>>,
    progress: Arc<dyn Fn(&str) + Send + Sync>,
    /// Per sink label: the signal that its last event is done, which its next event waits for.
    last: Arc<Mutex<std::collections::BTreeMap<String, tokio::sync::oneshot::Receiver<()>>>>,
}

impl Delivery {
    /// Deliveries for the sinks of `settings`.
    pub fn new(notifier: Arc<dyn Notifier>, clock: Arc<dyn Clock>, settings: NotifySettings, progress: Arc<dyn Fn(&str) + Send + Sync>) -> Self {
        Self { notifier, clock, settings, in_flight: Default::default(), failures: Default::default(), progress, last: Default::default() }
    }

    /// The `[notify] link`.
    pub fn link(&self) -> Option<&str> {
        self.settings.link.as_deref()
    }

    /// Starts delivering `event` to every sink that takes its kind; returns at once.
    pub fn send(&self, event: Event) {
        self.notifier.sent(&event);
        for sink in self.settings.sinks.iter().filter(|s| s.on.contains(&event.event)) {
            let (label, kind) = (sink.label.clone(), event.event);
            let (notifier, clock, sink, event, progress) = (self.notifier.clone(), self.clock.clone(), sink.clone(), event.clone(), self.progress.clone());
            let (done, next) = tokio::sync::oneshot::channel::<()>();
            let before = self.last.lock().unwrap().insert(label.clone(), next);
            let task = tokio::spawn(async move {
                // Done either way (sent, or dropped when this task ends or is abandoned): the next event goes then.
                let _done = done;
                if let Some(before) = before {
                    let _ = before.await;
                }
                let mut last = None;
                for attempt in 0..ATTEMPTS {
                    if attempt > 0 {
                        clock.sleep(Duration::from_secs(1 << (attempt - 1))).await;
                    }
                    let outcome = tokio::select! {
                        r = notifier.deliver(&sink, &event) => r,
                        _ = clock.sleep(SINK_TIMEOUT) => Err(Aws::SinkTimeout { within: SINK_TIMEOUT }.into()),
                    };
                    match outcome {
                        Ok(()) => return None,
                        Err(e) => last = Some(e.message().to_owned()),
                    }
                }
                let error = last.unwrap_or_default();
                progress(&format!("notify: {} did not take the {} event after {ATTEMPTS} attempts: {error}", sink.label, event.event.as_str()));
                Some(NotifyFailure { sink: sink.label.clone(), event: event.event.as_str().to_owned(), error })
            });
            self.in_flight.lock().unwrap().push((label, kind, task));
        }
    }

    /// Waits for the deliveries still in flight, at most `limit` in all, and returns every failure so far (a
    /// delivery still running then is abandoned and counted as failed).
    pub async fn settle(&self, limit: Duration) -> Vec<NotifyFailure> {
        let tasks: Vec<_> = std::mem::take(&mut *self.in_flight.lock().unwrap());
        let deadline = self.clock.now().add(limit);
        for (sink, kind, mut t) in tasks {
            let left = deadline.since(self.clock.now());
            let done = tokio::select! {
                // A delivery that is done counts as done, even once the time is up.
                biased;
                r = &mut t => r.ok().flatten(),
                _ = self.clock.sleep(left) => {
                    t.abort();
                    Some(NotifyFailure { sink, event: kind.as_str().to_owned(), error: "still delivering when the command ended".into() })
                }
            };
            if let Some(f) = done {
                self.failures.lock().unwrap().push(f);
            }
        }
        self.failures.lock().unwrap().clone()
    }
}
