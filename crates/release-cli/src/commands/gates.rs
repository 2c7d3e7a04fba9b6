//! `release plan`, `approve`, `freeze`, `unfreeze`, `veto`, `unveto`: the promotion gates (each one call of the
//! facade; the state lives in the ledger table, readable by any machine).

use release::model::error::Input;
use release::Error;
use release::model::ids::short_sha;
use release::ops::gates::GateReport;
use release::Result;

use crate::args::Global;
use crate::context;
use crate::output::Output;

pub async fn plan(g: &Global, out: &Output, env: Option<&str>) -> Result<()> {
    let pipeline = context::load_pipeline_to_read(g)?;
    if let Some(e) = env {
        pipeline.env(e)?;
    }
    let c = context::connected(g, pipeline, "plan", context::Writes::Nothing).await?;
    let envs = c.release.plan_gates(env).await?;
    let mut doc = serde_json::json!({ "ok": true, "app": c.release.pipeline.app, "envs": envs });
    context::add_calls(&mut doc, &c.app);
    out.result(&doc, || {
        let mut s = String::new();
        for e in &envs {
            let sha = |c: Option<&release::model::ids::CommitSha>| c.map(|c| short_sha(c.as_str()).to_owned()).unwrap_or_else(|| "-".into());
            s.push_str(&format!("{}{}: live {}, candidate {}", e.env, if e.auto { " (auto)" } else { "" }, sha(e.live.as_ref()), sha(e.candidate.as_ref().map(|c| &c.commit))));
            if let Some(subj) = e.candidate.as_ref().and_then(|c| c.subject.as_deref()) {
                s.push_str(&format!(" ({subj})"));
            }
            let verdict = match (&e.candidate, e.eligible) {
                (None, _) => "nothing to promote",
                (Some(c), _) if Some(&c.commit) == e.live.as_ref() => "already live",
                (Some(_), true) => "eligible",
                (Some(_), false) => "held",
            };
            s.push_str(&format!(" - {verdict}\n"));
            for gate in &e.gates {
                s.push_str(&format!("  {} {}\n", if gate.open { "ok  " } else { "HOLD" }, gate.line()));
            }
        }
        s.trim_end().to_owned()
    });
    Ok(())
}

fn report(out: &Output, c: &context::Connected, r: &GateReport, text: String) {
    let mut doc = serde_json::to_value(r).unwrap_or_default();
    doc["ok"] = true.into();
    doc["app"] = c.release.pipeline.app.to_string().into();
    context::add_calls(&mut doc, &c.app);
    out.result(&doc, || text);
}

pub async fn approve(g: &Global, out: &Output, rev: &str, env: &str, note: Option<&str>) -> Result<()> {
    let pipeline = context::load_pipeline(g)?;
    pipeline.env(env)?;
    let c = context::connected(g, pipeline, "approve", context::Writes::Ledger).await?;
    let commit = context::resolve_commit(rev, &c.app).await?;
    let r = c.release.approve(env, &commit, note).await?;
    let (who, needed) = r.approvals.clone().unwrap_or_default();
    let text = format!("{} approved {} for {}: {} of {} approval(s) ({})", r.actor, short_sha(commit.as_str()), env, who.len(), needed, who.join(", "));
    report(out, &c, &r, text);
    Ok(())
}

pub async fn freeze(g: &Global, out: &Output, env: &str, reason: &str, until: Option<&str>) -> Result<()> {
    let pipeline = context::load_pipeline(g)?;
    pipeline.env(env)?;
    if reason.trim().is_empty() {
        return Err(Input::EmptyReason { flag: "--reason" }.into());
    }
    let c = context::connected(g, pipeline, "freeze", context::Writes::Ledger).await?;
    let now = c.release.session.cloud.clock.now();
    let until = match until {
        Some(u) => {
            let t = release::model::clock::parse_when(u, now).map_err(|why| Input::Until { why })?;
            if t <= now {
                return Err(Input::Until { why: format!("{t} is already past") }.into());
            }
            Some(t)
        }
        None => None,
    };
    let r = c.release.freeze(env, reason, until).await?;
    let text = format!("{} froze {}: {}{}", r.actor, env, reason, until.map(|u| format!(" (until {u})")).unwrap_or_default());
    report(out, &c, &r, text);
    Ok(())
}

pub async fn unfreeze(g: &Global, out: &Output, env: &str) -> Result<()> {
    let pipeline = context::load_pipeline(g)?;
    pipeline.env(env)?;
    let c = context::connected(g, pipeline, "unfreeze", context::Writes::Ledger).await?;
    let r = c.release.unfreeze(env).await?;
    let text = format!("{} unfroze {}", r.actor, env);
    report(out, &c, &r, text);
    Ok(())
}

pub async fn veto(g: &Global, out: &Output, rev: &str, reason: &str) -> Result<()> {
    let pipeline = context::load_pipeline(g)?;
    if reason.trim().is_empty() {
        return Err(Input::EmptyReason { flag: "--reason" }.into());
    }
    let c = context::connected(g, pipeline, "veto", context::Writes::Ledger).await?;
    let commit = context::resolve_commit(rev, &c.app).await?;
    let r = c.release.veto(&commit, reason).await?;
    let text = format!("{} vetoed {} in every environment: {}", r.actor, short_sha(commit.as_str()), reason);
    report(out, &c, &r, text);
    Ok(())
}

pub async fn unveto(g: &Global, out: &Output, rev: &str) -> Result<()> {
    let pipeline = context::load_pipeline(g)?;
    let c = context::connected(g, pipeline, "unveto", context::Writes::Ledger).await?;
    let commit = context::resolve_commit(rev, &c.app).await?;
    let r = c.release.unveto(&commit).await?;
    let text = format!("{} lifted the veto on {}", r.actor, short_sha(commit.as_str()));
    report(out, &c, &r, text);
    Ok(())
}

/// `--override-gates --reason TEXT` as the options take it: the reason, which must say something.
pub fn override_reason(on: bool, reason: Option<&str>) -> Result<Option<String>> {
    match (on, reason) {
        (false, _) => Ok(None),
        (true, Some(r)) if !r.trim().is_empty() => Ok(Some(r.to_owned())),
        (true, Some(_)) => Err(Input::EmptyReason { flag: "--reason" }.into()),
        (true, None) => Err(Input::OverrideWithoutReason.into()),
    }
}

/// `release reconcile [--once] [--interval DUR]`: one cycle per interval until SIGTERM (which, between cycles, ends
/// the process at once; during a promote or switch, the engine stops it the way Ctrl-C does and this exits 130).
pub async fn reconcile(g: &Global, out: &Output, once: bool, interval: &str) -> Result<()> {
    let every = release::model::clock::parse_duration(interval).map_err(|why| Error::from(Input::Interval { given: interval.to_owned(), why }))?;
    if every < std::time::Duration::from_secs(1) {
        return Err(Input::IntervalTooShort { given: interval.to_owned() }.into());
    }
    let pipeline = context::load_pipeline(g)?;
    let c = context::connected(g, pipeline, "reconcile", context::Writes::Ledger).await?;
    let autos: Vec<String> = c.release.pipeline.envs.iter().filter(|e| e.gates.auto).map(|e| e.name.to_string()).collect();
    if autos.is_empty() {
        eprintln!("reconcile: no environment of {} has auto = true; nothing to do", c.release.pipeline.app);
    }
    loop {
        let decisions = c.release.reconcile_once().await?;
        for d in &decisions {
            let sha = d.commit.as_ref().map(|c| format!(" {}", short_sha(c.as_str()))).unwrap_or_default();
            eprintln!("reconcile: {} {}{}: {}", d.env, d.decision, sha, d.reason);
        }
        if once {
            let mut doc = serde_json::json!({ "ok": true, "app": c.release.pipeline.app, "decisions": decisions });
            context::add_calls(&mut doc, &c.app);
            out.result(&doc, || format!("{} decision(s)", decisions.len()));
            return Ok(());
        }
        tokio::time::sleep(every).await;
    }
}
