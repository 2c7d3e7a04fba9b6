//! `release notify test --env ENV`: a test event to every sink of `[notify]`, one attempt each within the
//! delivery timeout; one line per sink; exit 6 when any did not take it.

use std::time::Instant;

use release::model::event::{Event, EventKind, InstanceCounts, SINK_TIMEOUT};
use release::model::pipeline::SinkKind;
use release::{Error, Result};

use crate::args::Global;
use crate::context;
use crate::output::Output;

/// The action of the test event: no real action has this name, so receivers can tell it apart.
pub const TEST_ACTION: &str = "notify-test";

pub async fn test(g: &Global, out: &Output, env: &str) -> Result<()> {
    let pipeline = context::load_pipeline(g)?;
    let environment = pipeline.env(env)?.clone();
    if pipeline.notify.sinks.is_empty() {
        let file = pipeline.file.display().to_string();
        out.result(&serde_json::json!({ "ok": true, "app": pipeline.app, "env": environment.name, "sinks": [] }), || {
            format!("{file} has no [[notify.sinks]]; nothing was sent")
        });
        return Ok(());
    }
    let c = context::connected(g, pipeline, "notify", context::Writes::Nothing).await?;
    let session = &c.release.session;
    let pipeline = &c.release.pipeline;
    let actor = &session.actor;
    let clusters = environment.clusters();
    let event = Event {
        event: EventKind::Started,
        step: None,
        at: session.cloud.clock.now(),
        app: pipeline.app.to_string(),
        env: environment.name.to_string(),
        cluster: (clusters.len() == 1).then(|| clusters[0].name.to_string()),
        action: TEST_ACTION.to_owned(),
        commit: None,
        commit_short: None,
        subject: Some("a test event from `release notify test`: nothing was deployed".to_owned()),
        ami: None,
        from: String::new(),
        to: String::new(),
        actor: actor.name.clone(),
        caller: actor.caller.clone(),
        host: actor.host.clone(),
        release_id: session.new_release_id().to_string(),
        outcome: "started".to_owned(),
        reason: None,
        rolled_back: None,
        seconds: Default::default(),
        instances: InstanceCounts::default(),
        link: pipeline.notify.link.clone(),
        hooks: Vec::new(),
    };
    // Every sink at once, whatever its `on`: one attempt, bounded like a deploy's.
    let notifier = session.notifier.clone();
    let tasks: Vec<_> = pipeline
        .notify
        .sinks
        .iter()
        .map(|sink| {
            let (notifier, sink, event) = (notifier.clone(), sink.clone(), event.clone());
            tokio::spawn(async move {
                let start = Instant::now();
                let result = match tokio::time::timeout(SINK_TIMEOUT, notifier.deliver(&sink, &event)).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::aws(format!("no answer within {}s", SINK_TIMEOUT.as_secs()))),
                };
                (sink, result, start.elapsed())
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.map_err(|e| Error::internal(format!("a delivery task failed: {e}")))?);
    }
    let failed = results.iter().filter(|(_, r, _)| r.is_err()).count();
    let doc = serde_json::json!({
        "ok": failed == 0,
        "app": pipeline.app,
        "env": environment.name,
        "event": event,
        "failed": failed,
        "sinks": results.iter().map(|(sink, r, took)| serde_json::json!({
            "sink": sink.label,
            "kind": kind_name(&sink.kind),
            "ok": r.is_ok(),
            "error": r.as_ref().err().map(|e| e.message().to_owned()),
            "seconds": (took.as_secs_f64() * 1000.0).round() / 1000.0,
        })).collect::<Vec<_>>(),
    });
    let mut doc = doc;
    let failure = (failed > 0).then(|| Error::aws(format!("{failed} of {} sink(s) did not take the test event", results.len())));
    if let Some(e) = &failure {
        // The one JSON document carries the error in the documented shape too.
        doc["error"] = serde_json::json!({ "kind": e.kind().as_str(), "message": e.message(), "details": [], "exit_code": e.kind().exit_code() });
    }
    context::add_calls(&mut doc, &c.app);
    out.result(&doc, || {
        results
            .iter()
            .map(|(sink, r, took)| match r {
                Ok(()) => format!("ok      {} ({:.2}s)", sink.label, took.as_secs_f64()),
                Err(e) => format!("failed  {}: {}", sink.label, e.message()),
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    match failure {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

fn kind_name(kind: &SinkKind) -> &'static str {
    match kind {
        SinkKind::Webhook { .. } => "webhook",
        SinkKind::Slack { .. } => "slack",
        SinkKind::Sns { .. } => "sns",
        SinkKind::Command { .. } => "command",
    }
}
