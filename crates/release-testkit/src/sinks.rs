//! A notifier for engine tests: records every delivery attempt, and answers per sink as scripted (deliver, fail,
//! or never answer), so that events, retries and the bound on a hanging sink can be checked in simulated time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use release_core::model::event::{Event};
use release_core::ports::{Notifier};
use release_core::model::pipeline::Sink;
use release_core::model::error::Aws;
use release_core::Result;

/// How a scripted sink answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Takes the event.
    Ok,
    /// Refuses it (as an HTTP 500 would).
    Fail,
    /// Never answers.
    Hang,
}

/// Every attempt, in order: (sink label, event); and how each sink answers (by label; default `Ok`).
#[derive(Clone, Default)]
pub struct RecordingNotifier {
    /// Attempts, in order.
    pub attempts: Arc<Mutex<Vec<(String, Event)>>>,
    /// Answers by sink label.
    pub answers: Arc<Mutex<BTreeMap<String, Answer>>>,
    /// Events each sink took, in the order it took them (a slow attempt is taken when it ends).
    pub received: Arc<Mutex<Vec<(String, Event)>>>,
    /// Sinks whose first attempt is slow: it takes the event after this long (simulated).
    pub slow_first: Arc<Mutex<BTreeMap<String, std::time::Duration>>>,
    /// Sinks whose first attempt fails (an HTTP 500): the event is taken by a retry.
    pub fail_first: Arc<Mutex<std::collections::BTreeSet<String>>>,
}

impl RecordingNotifier {
    /// The events delivered to `sink` (attempts that it took), in order.
    pub fn delivered(&self, sink: &str) -> Vec<Event> {
        let answer = self.answers.lock().unwrap().get(sink).copied().unwrap_or(Answer::Ok);
        if answer != Answer::Ok {
            return Vec::new();
        }
        self.received.lock().unwrap().iter().filter(|(s, _)| s == sink).map(|(_, e)| e.clone()).collect()
    }

    /// Forgets every attempt and delivery so far (a test's earlier commands).
    pub fn clear(&self) {
        self.attempts.lock().unwrap().clear();
        self.received.lock().unwrap().clear();
    }

    /// How many attempts `sink` got.
    pub fn attempts_at(&self, sink: &str) -> usize {
        self.attempts.lock().unwrap().iter().filter(|(s, _)| s == sink).count()
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    async fn deliver(&self, sink: &Sink, event: &Event) -> Result<()> {
        self.attempts.lock().unwrap().push((sink.label.clone(), event.clone()));
        let answer = self.answers.lock().unwrap().get(&sink.label).copied().unwrap_or(Answer::Ok);
        if self.fail_first.lock().unwrap().remove(&sink.label) {
            return Err(Aws::Sink { sink: Some(sink.label.clone()), what: "HTTP 500".into() }.into());
        }
        let slow = self.slow_first.lock().unwrap().remove(&sink.label);
        if let Some(d) = slow {
            tokio::time::sleep(d).await;
        }
        match answer {
            Answer::Ok => {
                self.received.lock().unwrap().push((sink.label.clone(), event.clone()));
                Ok(())
            }
            Answer::Fail => Err(Aws::Sink { sink: Some(sink.label.clone()), what: "HTTP 500".into() }.into()),
            Answer::Hang => std::future::pending().await,
        }
    }
}
