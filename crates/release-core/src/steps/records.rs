//! Closing the records of runs that died, from a later run under the lock.


use crate::model::error::Result;
use crate::model::ledger::{Action, Outcome, Record};
use crate::model::weights::Weights;
use crate::ports::Expect;
use crate::engine::runner::Op;
use crate::model::ledger::step_name;

/// Closes the records of switches whose process died: applied (Route53 holds what they asked for) or abandoned.
pub async fn close_unfinished(op: &mut Op<'_>, records: &[Record], now_weights: &Weights) -> Result<()> {
    let table = op.pipeline().ledger_table.clone();
    let current = now_weights.describe();
    for r in records.iter().filter(|r| r.outcome == Outcome::Started) {
        let Action::Switch(s) = &r.action else { continue };
        let applied = s.to.describe() == current;
        let mut r = r.clone();
        let holder = r.holder.clone();
        r.outcome = if applied { Outcome::Succeeded } else { Outcome::Abandoned };
        r.finished = Some(op.cloud().clock.now());
        r.detail = Some(if applied {
            "its process died after Route53 took the change; closed by a later run".into()
        } else {
            "its process died before Route53 took the change; closed by a later run".into()
        });
        r.rolled_back = Some(!applied);
        op.cloud().ledger.put_record(&table, &r, Expect::Holder(holder)).await?;
    }
    Ok(())
}

/// Closes the unfinished rollouts of dead runs as rolled back (a rollback under the lock restores their weights).
pub async fn close_dead(op: &mut Op<'_>, records: &[Record]) -> Result<()> {
    let table = op.pipeline().ledger_table.clone();
    for r in records.iter().filter(|r| r.outcome == Outcome::Started && r.holder != *op.run_id()) {
        let Action::Switch(s) = &r.action else { continue };
        let Some(state) = &s.rollout else { continue };
        let mut r = r.clone();
        let holder = r.holder.clone();
        r.outcome = Outcome::RolledBack;
        r.finished = Some(op.cloud().clock.now());
        r.rolled_back = Some(true);
        r.detail = Some(format!("its process died at step {}; `release rollback` (run {}) went back", step_name(&state.steps, state.step), op.run_id()));
        op.cloud().ledger.put_record(&table, &r, Expect::Holder(holder)).await?;
    }
    Ok(())
}
