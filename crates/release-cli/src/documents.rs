//! The JSON documents of the read-only commands (`status`, `history`, `images`), built in one place so that the
//! CLI's `--output json` and the dashboard's `/api/...` are the same documents. Each builder returns the document
//! (without `api_calls`, which is per process: the CLI adds its own) and the typed values the text output needs.

use std::collections::BTreeMap;

use release::model::ledger::{Record, Ticket};
use release::model::pipeline::Pipeline;
use release::ports::tags;
use release::ops::status::EnvStatus;
use release::{App, Release, Result};
use serde_json::{json, Value};

/// `release status --output json`: every pipeline's environments; `app` and `environments` at the top too when
/// there is one pipeline. When an environment is not as it should be (`status_problem`), `ok` is false and
/// `error` says why in the shape of every failure document, so the board shows what the command exits for.
pub async fn status(app: &App, pipelines: &[Pipeline], env: Option<&str>) -> Result<(Value, Vec<(String, Vec<EnvStatus>)>)> {
    let mut apps = Vec::new();
    for pipeline in pipelines {
        apps.push((pipeline.app.to_string(), app.with_pipeline(pipeline.clone()).release().status(env).await?));
    }
    let mut doc = json!({
        "ok": true,
        "apps": apps.iter().map(|(app, envs)| json!({ "app": app, "environments": envs })).collect::<Vec<_>>(),
    });
    if let [(app, envs)] = apps.as_slice() {
        doc["app"] = app.clone().into();
        doc["environments"] = serde_json::to_value(envs).unwrap_or_default();
    }
    if let Some(e) = status_problem(&apps) {
        doc["ok"] = false.into();
        doc["error"] = json!({ "kind": e.kind().as_str(), "message": e.message(), "details": [], "exit_code": e.kind().exit_code() });
    }
    Ok((doc, apps))
}

/// What `status` exits for, the first environment's (in the order shown): a deleted part of a load balancer
/// (3) or a serving cluster below its count (4).
pub fn status_problem(apps: &[(String, Vec<EnvStatus>)]) -> Option<release::Error> {
    apps.iter().flat_map(|(_, envs)| envs).find_map(EnvStatus::problem)
}

/// `release history --output json`: the waiting tickets (when the environment is in the file) and the records,
/// newest first.
pub async fn history(release: &Release, env: Option<&str>, limit: u32, outcome: Option<release::model::ledger::Outcome>) -> Result<(Value, Vec<Record>, Vec<Ticket>)> {
    let records = release.history_of(env, limit, outcome).await?;
    // Commands waiting in the queue come first: they are what happens next (not outcomes: left out when filtering).
    let in_file = outcome.is_none() && env.is_none_or(|e| release.pipeline.env(e).is_ok());
    let waiting: Vec<Ticket> = if in_file {
        release.queue(env).await?.into_iter().flat_map(|v| v.tickets).filter(|t| !t.stale).map(|t| t.ticket).collect()
    } else {
        Vec::new()
    };
    let doc = json!({ "ok": true, "app": release.pipeline.app, "queued": waiting, "records": records });
    Ok((doc, records, waiting))
}

/// `release images --output json`: the app's complete bakes, newest first, with where each runs and what `gc` with
/// its defaults decides for each (`gc`: why it stays, or that it may go).
pub async fn images(app: &App) -> Result<Value> {
    let pipeline = app.pipeline();
    let (world, verdicts) = app.image_verdicts(&Default::default()).await?;
    let (images, instances) = (world.images, world.instances);
    let mut complete: Vec<_> = images.into_iter().filter(|i| i.is_complete_bake()).collect();
    complete.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
    let rows: Vec<Value> = complete
        .iter()
        .map(|i| {
            let mut running: BTreeMap<String, u32> = BTreeMap::new();
            for inst in instances.iter().filter(|x| x.ami == i.id.as_str() && x.state == "running") {
                let env = inst.tags.get(tags::ENV).map_or("?", String::as_str);
                let cluster = inst.tags.get(tags::CLUSTER).map_or("?", String::as_str);
                *running.entry(format!("{env}/{cluster}")).or_default() += 1;
            }
            json!({
                "commit": i.tags.get(tags::COMMIT), "ami": i.id, "name": i.name, "created": i.created,
                "bake_key": i.tags.get(tags::BAKE_KEY), "running": running,
                "gc": verdicts.verdict(&i.id),
            })
        })
        .collect();
    Ok(json!({ "ok": true, "app": pipeline.app, "images": rows, "gc_defaults": { "keep": verdicts.keep, "older_than": verdicts.older_than } }))
}
