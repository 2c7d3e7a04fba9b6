//! Instances: registering with and deregistering from a load balancer, terminating, and the waits for them.

use crate::model::error::{Cause, Deploy, Error, Result};
use crate::model::ids::InstanceId;
use crate::engine::runner::Op;
use crate::model::pipeline::LbTarget;
use crate::ports::LaunchSpec;

/// Registers, retrying while the load balancer does not know the fresh ids yet or does not see them running yet
/// (its view lags EC2's), for as long as EC2 says they are pending or running (or does not know them yet either),
/// at most `patience`. One that EC2 says is terminated, shutting down or stopped stops it at once: it will never
/// be registered, however long it is retried.
pub async fn register(op: &mut Op<'_>, target: &crate::model::pipeline::LbTarget, ids: &[InstanceId], port: u16, patience: std::time::Duration) -> Result<()> {
    let start = op.cloud().clock.now();
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        match op.cloud().balancer.register(target, ids, port).await {
            Err(e) if e.is(Cause::NotYetVisible) || e.is(Cause::NotRunning) => {
                if let Some(gone) = not_coming(op, ids).await? {
                    let (id, state) = (gone.id.to_string(), gone.state.to_string());
                    return Err(Error::from(Deploy::InstanceNotRunning { id, state }).context(format!("registering with {target}")));
                }
                if op.cloud().clock.now().since(start) >= patience {
                    return Err(e);
                }
                op.pause(wait).await?;
                wait = (wait * 2).min(std::time::Duration::from_secs(10));
            }
            other => return other,
        }
    }
}

/// The first of `ids` that EC2 says will never run (terminated, shutting down, stopping, stopped); none while EC2
/// does not know them yet.
async fn not_coming(op: &Op<'_>, ids: &[InstanceId]) -> Result<Option<crate::ports::Instance>> {
    const GONE: &[&str] = &["shutting-down", "terminated", "stopping", "stopped"];
    match op.cloud().fleet.instances_in(ids, GONE).await {
        Ok(gone) => Ok(gone.into_iter().next()),
        Err(e) if e.is(Cause::NotYetVisible) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Terminates, retrying while EC2 does not know fresh ids yet: a rollback right after a launch must not leave
/// the new instances running.
pub async fn terminate(op: &mut Op<'_>, ids: &[InstanceId]) -> Result<()> {
    let start = op.cloud().clock.now();
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        match op.cloud().fleet.terminate(ids).await {
            Err(e) if e.is(Cause::NotYetVisible) && op.cloud().clock.now().since(start) < VISIBLE_WITHIN => {
                // Cleaning up is not stopped by a first Ctrl-C; the clock still serves the wait.
                op.sleep_through(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(10));
            }
            other => return other,
        }
    }
}

/// How long an id created moments ago may stay invisible (EC2 eventual consistency) before that is an error.
pub const VISIBLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(120);

/// Takes `ids` out of `target` (their connections drain as the load balancer is set to).
pub async fn deregister(op: &Op<'_>, target: &LbTarget, ids: &[InstanceId]) -> Result<()> {
    op.cloud().balancer.deregister(target, ids).await
}

/// Launches one batch of instances as `spec` says (one RunInstances call); the ids, or why none were launched.
pub async fn launch(op: &Op<'_>, spec: &LaunchSpec) -> Result<Vec<InstanceId>> {
    op.cloud().fleet.launch(spec).await
}
