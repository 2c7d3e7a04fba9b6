//! Writing a gate's state (approve, freeze, unfreeze, veto, unveto): one record per environment it concerns, each
//! with a conditional write (no record of that id yet), so a change is never lost to or overwrites another. No lock:
//! approving prod must not wait for, or be refused by, a deploy running there.

use crate::engine::session::Session;
use crate::model::error::Result;
use crate::model::ids::EnvName;
use crate::model::ledger::{Action, GateDetails, Outcome, Record};
use crate::model::pipeline::Pipeline;

/// Writes `details` into the ledger of each of `envs` (a veto goes to every environment of the app); the records
/// written.
pub async fn write(session: &Session, pipeline: &Pipeline, envs: &[&EnvName], details: &GateDetails) -> Result<Vec<Record>> {
    let cloud = &session.cloud;
    let now = cloud.clock.now();
    let mut out = Vec::new();
    for env in envs {
        let mut record = session.record(pipeline, env, session.new_release_id(), now, Action::Gate(details.clone()));
        record.finished = Some(now);
        record.outcome = Outcome::Succeeded;
        record.detail = details.reason.clone();
        cloud.ledger.put_record(&pipeline.ledger_table, &record, crate::ports::Expect::New).await?;
        cloud.ledger.index_env(&pipeline.ledger_table, &pipeline.app, env).await?;
        out.push(record);
    }
    Ok(out)
}
