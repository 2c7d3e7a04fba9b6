//! `approve`, `freeze`, `unfreeze`, `veto`, `unveto` and `plan`: the promotion gates' state, written by one step
//! (`steps::gates::write`) and judged by one module (`observe::gates`).

use serde::Serialize;

use crate::engine::session::Session;
use crate::model::clock::Timestamp;
use crate::model::error::Result;
use crate::model::ids::{CommitSha, EnvName};
use crate::model::ledger::{GateChange, GateDetails, Record};
use crate::model::pipeline::{Environment, Pipeline};
use crate::observe::gates;

/// What a gate command wrote.
#[derive(Clone, Debug, Serialize)]
pub struct GateReport {
    /// `approve`, `freeze`, ...
    pub change: &'static str,
    /// The environments it was written to.
    pub envs: Vec<EnvName>,
    /// The commit, if one.
    pub commit: Option<CommitSha>,
    /// The reason or note.
    pub reason: Option<String>,
    /// When a freeze ends.
    pub until: Option<Timestamp>,
    /// Who (the ledger's actor).
    pub actor: String,
    /// The record ids written.
    pub release_ids: Vec<String>,
    /// For an approval: everyone who approved this commit for this environment now, and how many are needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvals: Option<(Vec<String>, u32)>,
}

async fn write(session: &Session, pipeline: &Pipeline, envs: Vec<&EnvName>, details: GateDetails) -> Result<GateReport> {
    let records: Vec<Record> = crate::steps::gates::write(session, pipeline, &envs, &details).await?;
    Ok(GateReport {
        change: details.change.as_str(),
        envs: envs.into_iter().cloned().collect(),
        commit: details.commit,
        reason: details.reason,
        until: details.until,
        actor: session.actor.name.clone(),
        release_ids: records.iter().map(|r| r.release_id.to_string()).collect(),
        approvals: None,
    })
}

/// One person approves `commit` for `env`; the same person approving again counts once.
pub async fn approve(session: &Session, pipeline: &Pipeline, env: &Environment, commit: &CommitSha, note: Option<&str>) -> Result<GateReport> {
    let details = GateDetails { change: GateChange::Approve, commit: Some(commit.clone()), reason: note.map(str::to_owned), until: None };
    let mut report = write(session, pipeline, vec![&env.name], details).await?;
    let ledgers = gates::read(&session.cloud, pipeline, &[env]).await?;
    report.approvals = Some((gates::approvers(ledgers.get(&env.name).map(Vec::as_slice).unwrap_or_default(), commit), env.gates.approvals));
    Ok(report)
}

/// Freezes `env`: nothing is promoted or switched to there until `unfreeze` or `until`.
pub async fn freeze(session: &Session, pipeline: &Pipeline, env: &Environment, reason: &str, until: Option<Timestamp>) -> Result<GateReport> {
    let details = GateDetails { change: GateChange::Freeze, commit: None, reason: Some(reason.to_owned()), until };
    write(session, pipeline, vec![&env.name], details).await
}

/// Ends the freeze of `env`.
pub async fn unfreeze(session: &Session, pipeline: &Pipeline, env: &Environment) -> Result<GateReport> {
    let details = GateDetails { change: GateChange::Unfreeze, commit: None, reason: None, until: None };
    write(session, pipeline, vec![&env.name], details).await
}

/// Vetoes `commit` for the whole app: recorded in every environment's ledger, so each judges from its own.
pub async fn veto(session: &Session, pipeline: &Pipeline, commit: &CommitSha, reason: &str) -> Result<GateReport> {
    let details = GateDetails { change: GateChange::Veto, commit: Some(commit.clone()), reason: Some(reason.to_owned()), until: None };
    write(session, pipeline, pipeline.envs.iter().map(|e| &e.name).collect(), details).await
}

/// Lifts the veto on `commit`.
pub async fn unveto(session: &Session, pipeline: &Pipeline, commit: &CommitSha) -> Result<GateReport> {
    let details = GateDetails { change: GateChange::Unveto, commit: Some(commit.clone()), reason: None, until: None };
    write(session, pipeline, pipeline.envs.iter().map(|e| &e.name).collect(), details).await
}
