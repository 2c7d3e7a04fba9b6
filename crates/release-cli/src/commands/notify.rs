//! `release notify test --env ENV`: a test event to every sink of `[notify]`, one attempt each within the
//! delivery timeout; one line per sink; exit 6 when any did not take it.

use release::model::pipeline::SinkKind;
use release::model::error::Aws;
use release::{Error, Result};

use crate::args::Global;
use crate::context;
use crate::output::Output;

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
    let pipeline = c.app.pipeline();
    // Every sink at once, whatever its `on`: one attempt, bounded like a deploy's.
    let (event, trials) = c.app.env(env)?.test_sinks().await?;
    let results: Vec<_> = trials.into_iter().map(|t| (t.sink, t.result, t.took)).collect();
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
    let failure = (failed > 0).then(|| Error::from(Aws::SinksFailed { failed, total: results.len() }));
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
