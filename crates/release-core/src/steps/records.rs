//! Closing the records of runs that died, from a later run under the lock: the one way a record that is not this
//! run's own is written ([`close`]; the runner writes this run's).

use crate::engine::runner::Op;
use crate::engine::session::Session;
use crate::model::pipeline::{Environment, Pipeline};
use crate::model::error::Result;
use crate::model::ledger::{step_name, Action, Outcome, Record};
use crate::model::weights::Weights;
use crate::ports::Expect;

/// Closes `record` of a dead run with `outcome` and why, conditional on its holder (a run that is alive after
/// all keeps its record). `rolled_back`: `None` leaves what the record says.
pub async fn close(op: &Op<'_>, record: &Record, outcome: Outcome, rolled_back: Option<bool>, detail: String) -> Result<()> {
    let mut r = record.clone();
    r.outcome = outcome;
    r.finished = Some(op.cloud().clock.now());
    if rolled_back.is_some() {
        r.rolled_back = rolled_back;
    }
    r.detail = Some(detail);
    op.cloud().ledger.put_record(&op.pipeline().ledger_table, &r, Expect::Holder(record.holder.clone())).await?;
    Ok(())
}

/// Closes the records of switches whose process died: applied (Route53 holds what they asked for) or abandoned.
pub async fn close_unfinished(op: &mut Op<'_>, records: &[Record], now_weights: &Weights) -> Result<()> {
    for r in records.iter().filter(|r| r.outcome == Outcome::Started) {
        let Action::Switch(s) = &r.action else { continue };
        let applied = s.applied(now_weights);
        let (outcome, detail) = if applied {
            (Outcome::Succeeded, "its process died after Route53 took the change; closed by a later run")
        } else {
            (Outcome::Abandoned, "its process died before Route53 took the change; closed by a later run")
        };
        close(op, r, outcome, Some(!applied), detail.into()).await?;
    }
    Ok(())
}

/// Closes the unfinished rollouts of dead runs as rolled back (a rollback under the lock restores their weights).
pub async fn close_dead(op: &mut Op<'_>, records: &[Record]) -> Result<()> {
    for r in records.iter().filter(|r| r.outcome == Outcome::Started && r.holder != *op.run_id()) {
        let Action::Switch(s) = &r.action else { continue };
        let Some(state) = &s.rollout else { continue };
        let detail = format!("its process died at step {}; `release rollback` (run {}) went back", step_name(&state.steps, state.step), op.run_id());
        close(op, r, Outcome::RolledBack, Some(true), detail).await?;
    }
    Ok(())
}

/// Rewrites the closed record of the promote `release_id` (held by nobody now) with the outcome of the command (an
/// in-place promote whose `after_traffic` hook failed, then rolled back in a run of its own). Known gap: this is
/// written after the promote's run released the lock; the rollback belongs in the same run (ARCHITECTURE.md).
pub async fn reclose(session: &Session, pipeline: &Pipeline, env: &Environment, release_id: &str, outcome: Outcome, detail: &str) -> Result<()> {
    let (cloud, table) = (&session.cloud, &pipeline.ledger_table);
    let mut found = None;
    for limit in [Some(25), None] {
        let records = cloud.ledger.records(table, &pipeline.app, &env.name, limit).await?;
        found = records.into_iter().find(|r| r.release_id.as_str() == release_id);
        if found.is_some() {
            break;
        }
    }
    let mut r = found.ok_or_else(|| crate::model::error::Error::internal(format!("record {release_id} not found")))?;
    r.outcome = outcome;
    r.rolled_back = Some(outcome == Outcome::RolledBack);
    r.detail = Some(detail.to_owned());
    let holder = r.holder.clone();
    cloud.ledger.put_record(table, &r, Expect::Holder(holder)).await?;
    Ok(())
}

