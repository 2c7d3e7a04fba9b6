//! Closing the records of runs that died, from a later run under the lock: the one way a record that is not this
//! run's own is written ([`close`]; the runner writes this run's).

use crate::engine::runner::Op;
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
