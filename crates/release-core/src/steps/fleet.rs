//! Instances: registering with and deregistering from a load balancer, terminating, and the waits for them.

use crate::model::error::{Cause, Result};
use crate::model::ids::InstanceId;
use crate::engine::runner::Op;
use crate::model::pipeline::LbTarget;
use crate::ports::LaunchSpec;

/// Registers, retrying while EC2 does not know the fresh ids yet.
pub async fn register(op: &mut Op<'_>, target: &crate::model::pipeline::LbTarget, ids: &[InstanceId], port: u16) -> Result<()> {
    let start = op.cloud().clock.now();
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        match op.cloud().balancer.register(target, ids, port).await {
            Err(e) if e.is(Cause::NotYetVisible) && op.cloud().clock.now().since(start) < VISIBLE_WITHIN => {
                op.pause(wait).await?;
                wait = (wait * 2).min(std::time::Duration::from_secs(10));
            }
            other => return other,
        }
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
