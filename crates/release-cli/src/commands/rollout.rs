//! `release rollout status|continue --env ENV`, and the rollout side of `switch` (`--steps`, `--pause`, its
//! report) and of `rollback` (asking a live rollout to go back).

use std::time::Duration;

use release::model::clock::{format_duration, parse_duration};
use release::model::pipeline::{parse_steps, RolloutStep};
use release::ops::rollout::{RequestReport, RolloutStatus};
use release::ops::switch::{SwitchPlan, SwitchReport};
use release::model::error::{Deploy, Input};
use release::{Error, Result};

use crate::args::{Global, RolloutAction};
use crate::context;
use crate::output::Output;

/// `--steps` and `--pause`, parsed.
#[derive(Default)]
pub struct StepOptions {
    pub steps: Option<Vec<RolloutStep>>,
    pub pause: Option<Duration>,
}

pub fn options(steps: Option<&str>, pause: Option<&str>) -> Result<StepOptions> {
    let steps = steps.map(parse_steps).transpose()?;
    let pause = pause
        .map(|p| {
            parse_duration(p).map_err(|why| Error::from(Input::Pause { given: p.to_owned(), why }))
        })
        .transpose()?;
    if pause.is_some_and(|p| p > release::model::pipeline::MAX_ROLLOUT_PAUSE) {
        return Err(Input::PauseTooLong { max: release::model::pipeline::MAX_ROLLOUT_PAUSE }.into());
    }
    Ok(StepOptions { steps, pause })
}

pub async fn run(g: &Global, out: &Output, action: &RolloutAction) -> Result<()> {
    match action {
        RolloutAction::Status { env } => status(g, out, env).await,
        RolloutAction::Continue { env, wait } => {
            let wait = super::queue::wait(wait.as_deref())?;
            let pipeline = context::load_pipeline(g)?;
            pipeline.env(env)?;
            let c = context::connected(g, pipeline, "rollout continue", context::Writes::Ledger).await?;
            let report = c.release.rollout_continue(env, wait).await?;
            if let Some(rep) = &report.resumed {
                return finish(out, rep, &c.app, std::time::Instant::now());
            }
            let mut doc = serde_json::to_value(&report).unwrap_or_default();
            doc["ok"] = true.into();
            context::add_calls(&mut doc, &c.app);
            out.result(&doc, || request_text(&report));
            Ok(())
        }
    }
}

fn request_text(r: &RequestReport) -> String {
    match (r.outcome.as_str(), r.ended.as_deref()) {
        ("started", Some(h)) if h.starts_with("hold") => format!("rollout {} went on past its {h}: it is at {} now", r.rollout, r.step),
        ("started", Some(p)) => format!("rollout {} ended the pause of step {p} early: it is at {} now", r.rollout, r.step),
        ("started", None) => format!("rollout {} went on: it is at {} now", r.rollout, r.step),
        (outcome, _) => format!("rollout {} was asked to {}; it ended {outcome} at {}", r.rollout, r.request.as_str(), r.step),
    }
}

async fn status(g: &Global, out: &Output, env: &str) -> Result<()> {
    let pipeline = context::load_pipeline_to_read(g)?;
    pipeline.env(env)?;
    let c = context::connected(g, pipeline, "rollout status", context::Writes::Nothing).await?;
    let st = c.release.rollout_status(env).await?;
    let mut doc = serde_json::to_value(&st).unwrap_or_default();
    doc["ok"] = true.into();
    context::add_calls(&mut doc, &c.app);
    out.result(&doc, || status_text(&st));
    Ok(())
}

fn status_text(st: &RolloutStatus) -> String {
    let mut s = String::new();
    if !st.in_progress {
        if st.weights.is_empty() {
            // In place: no weighted live name, and no rollouts (`promote --batch N` watches the alarms between batches).
            s.push_str(&format!("env {}: in place, no rollouts (one cluster takes all the traffic; `promote --batch N` watches [env.{}.rollout] between batches)", st.env, st.env));
        } else {
            s.push_str(&format!("env {}: no rollout under way (traffic: {})", st.env, st.weights));
        }
        if let (Some(id), Some(last)) = (&st.release_id, &st.last) {
            s.push_str(&format!("\n  last rollout {id} to {}: {last}", st.cluster.as_deref().unwrap_or("-")));
        }
    } else {
        let steps: Vec<String> = st.steps.iter().map(|x| x.to_string()).collect();
        s.push_str(&format!(
            "env {}: rollout {} to {}, step {} of {} ({}), steps {}\n  traffic: {}",
            st.env,
            st.release_id.as_deref().unwrap_or("-"),
            st.cluster.as_deref().unwrap_or("-"),
            st.step_number.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            st.steps.len(),
            st.step,
            steps.join(" "),
            st.weights
        ));
        if st.holding {
            s.push_str(&format!("\n  holding: `release rollout continue --env {}` goes on, `release rollback --env {}` goes back", st.env, st.env));
        } else if let Some(left) = st.seconds_left {
            s.push_str(&format!("\n  pause: {} left", format_duration(Duration::from_secs(left.ceil() as u64))));
        }
        if let Some((h, n)) = st.healthy {
            s.push_str(&format!("\n  health: {h}/{n} healthy"));
        }
        match (&st.holder, st.running) {
            (Some(h), true) => s.push_str(&format!("\n  run by {h} (holds the lock)")),
            _ => s.push_str(&format!(
                "\n  its run is gone: `release switch {}` resumes it, `release rollback --env {}` goes back",
                st.cluster.as_deref().unwrap_or("<cluster>"),
                st.env
            )),
        }
    }
    for a in &st.alarms {
        s.push_str(&format!("\n  alarm {}: {}", a.name, a.state.as_str()));
    }
    s
}

/// The rollout part of `switch --plan`.
pub fn plan_text(p: &SwitchPlan) -> String {
    let Some(r) = &p.rollout else { return String::new() };
    let mut s = format!("\n  in {} steps, each watched for {}:", r.steps.len(), format_duration(Duration::from_secs_f64(r.pause)));
    for (i, st) in r.steps.iter().enumerate() {
        match &st.weights {
            Some(w) => s.push_str(&format!("\n    {}. {}: {}", i + 1, st.step, w.describe_shares())),
            None => s.push_str(&format!("\n    {}. hold until `release rollout continue --env {}`", i + 1, p.env)),
        }
    }
    for a in &r.alarms {
        s.push_str(&format!("\n  alarm {}: {}", a.name, a.state.as_str()));
    }
    if let Some((id, at)) = &r.resumes {
        s.push_str(&format!("\n  resumes rollout {id} at {at}"));
    }
    s
}

/// Prints a rollout's report: exit 0 when it reached 100 %, exit 8 (deploy failed, traffic put back) when it went
/// back; `--output json` is one document either way.
pub fn finish(out: &Output, report: &SwitchReport, app: &release::App, start: std::time::Instant) -> Result<()> {
    let r = report.rollout.as_ref().expect("a rollout report");
    let mut doc = serde_json::to_value(report).unwrap_or_default();
    doc["wall_seconds"] = start.elapsed().as_secs_f64().into();
    context::add_calls(&mut doc, app);
    let p = &report.plan;
    if r.rolled_back {
        let reason = r.reason.clone().unwrap_or_default();
        let e = Error::from(Deploy::RolloutWentBack {
            release_id: report.release_id.clone(),
            env: p.env.to_string(),
            cluster: p.cluster.to_string(),
            to: p.from.describe_shares(),
            reason,
        })
        .with_rolled_back(true);
        doc["ok"] = false.into();
        doc["error"] = serde_json::json!({
            "kind": e.kind().as_str(),
            "message": e.message(),
            "details": e.details(),
            "exit_code": e.kind().exit_code(),
            "rolled_back": true,
        });
        out.result(&doc, String::new);
        return Err(e);
    }
    doc["ok"] = true.into();
    out.result(&doc, || {
        format!(
            "rolled {} out to {}: {} -> {} in {} Route53 change(s){}",
            p.env,
            p.cluster,
            p.from.describe_shares(),
            p.to.describe_shares(),
            r.route53_changes,
            if r.resumed { " (resumed an interrupted rollout)" } else { "" }
        )
    });
    Ok(())
}

/// `rollback` while a live run holds a rollout: it is asked to go back. `true` when that happened.
pub async fn rollback_during_rollout(out: &Output, c: &context::Connected, env: &str) -> Result<bool> {
    let Some(report) = c.release.rollout_rollback(env).await? else { return Ok(false) };
    let mut doc = serde_json::to_value(&report).unwrap_or_default();
    doc["ok"] = true.into();
    context::add_calls(&mut doc, &c.app);
    out.result(&doc, || format!("rollout {} went back from {} (asked by this rollback; its run restored the weights from before it)", report.rollout, report.step));
    Ok(true)
}
