//! The alarm watch: the one place a watched alarm's breach stops a deploy, polled through the clock.

use crate::model::clock::format_duration;
use crate::model::error::{Deploy, Error, Result};
use crate::model::ledger::{Outcome, Progress};
use crate::model::pipeline::Cluster;
use crate::engine::runner::Op;
use crate::observe::alarms;

/// In place with `promote --batch N`, after batch `done` of `total`: watches `[env.NAME.rollout]`'s alarms for its
/// `pause` (one DescribeAlarms call per poll; each batch already waited for its instances to be healthy). An alarm in ALARM (or
/// gone) stops the promote: the record closes `failed` with the batches done, the cluster keeps serving (every
/// member is healthy: the batch was), exit 8; `release rollback` then promotes the previous commit.
pub async fn between_batches(op: &mut Op<'_>, cluster: &Cluster, done: u32, total: u32) -> Result<()> {
    let Some(r) = op.env().rollout.clone().filter(|_| !op.env().is_blue_green()) else { return Ok(()) };
    if r.alarms.is_empty() && r.pause.is_zero() {
        return Ok(());
    }
    let clock = op.cloud().clock.clone();
    let until = clock.now().add(r.pause);
    op.progress(&format!(
        "batch {done}/{total} done; watching {} for {}{}",
        cluster.name,
        format_duration(r.pause),
        if r.alarms.is_empty() { String::new() } else { format!(" (alarms: {})", r.alarms.join(", ")) }
    ));
    loop {
        if let Some(why) = alarm_breach(op, &r.alarms).await? {
            op.set_outcome(Outcome::Failed);
            let env = op.env().name.clone();
            return Err(Error::from(Deploy::AlarmBetweenBatches { why, done, total, env: env.to_string() }).with_rolled_back(false));
        }
        let now = clock.now();
        if now >= until {
            return Ok(());
        }
        let wait = until.since(now).min(op.session().poll);
        op.report(Progress { phase: crate::model::phase::Phase::BetweenBatches, waiting_for: Some(format!("batch {done}/{total} done; watching alarms")), ..Default::default() }).await?;
        op.pause(wait).await?;
    }
}

/// One look at the alarms a watch watches: why it must stop (one gone or in ALARM; [`alarms::breach`]), or `None`.
/// The rollout's watch and the watch between batches both ask here.
pub async fn alarm_breach(op: &Op<'_>, names: &[String]) -> Result<Option<String>> {
    Ok(alarms::breach(&alarms::read(op.cloud(), names).await?))
}
