//! The Route53 flip: the ONE place weights change. Every move of traffic (a switch, each rollout step and its
//! revert, a rollback switching back, a failing hook going back) is one change batch sent by [`flip`]; the
//! records `provision` creates are [`upsert_records`].

use std::time::Duration;

use crate::engine::runner::Op;
use crate::model::clock::format_duration;
use crate::model::error::{Aws, LockHeld, Result};
use crate::model::ids::ClusterName;
use crate::model::weights::Weights;
use crate::observe::balancers::{env_lbs, misdirected, misdirected_for, refuse_misdirected};
use crate::observe::world::LiveName;
use crate::ports::{ChangeId, ChangeStatus, Cloud, RecordChange, WeightedAlias, ZoneId};

/// How long a flip waits for Route53 to report a change INSYNC (it usually takes under a minute).
pub const INSYNC_TIMEOUT: Duration = Duration::from_secs(300);

/// How often it asks.
pub const INSYNC_POLL: Duration = Duration::from_secs(3);

/// How a flip is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// Forward, or back on purpose (switch, rollout step, rollback, a hook's revert): asks AWS first that the lock
    /// is still this run's, refuses records that alias another load balancer, and waits through `Op::pause` (a
    /// signal stops the wait, never the change).
    Guarded,
    /// A rollout going back after a signal or a breach: the way back is always open, so no guard (the signal
    /// would stop it; a lost lock refuses instead), no look at the load balancers, and the wait is not cancellable.
    Revert,
}

/// What a flip did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flipped {
    /// Route53 already held `to`: nothing was sent.
    Unchanged,
    /// Route53 reported the change INSYNC.
    InSync,
    /// Route53 did not report INSYNC within [`INSYNC_TIMEOUT`], and the records read back hold `to`.
    Applied,
}

impl Flipped {
    /// Whether Route53 said the change is everywhere (or there was none).
    pub fn in_sync(self) -> bool {
        self != Flipped::Applied
    }
}

/// The upserts that take the records of `live` to `to` (the clusters `to` names; a weight already there is left).
fn changes(live: &LiveName, to: &Weights) -> Vec<RecordChange> {
    live.records
        .weighted
        .iter()
        .filter_map(|r| {
            let c = ClusterName::parse(&r.set_identifier).ok()?;
            let w = to.weight(&c);
            (to.has(&c) && w != r.weight).then(|| RecordChange::Upsert(WeightedAlias { weight: w, ..r.clone() }))
        })
        .collect()
}

/// Sends `to` as ONE change batch and waits (through the clock) until Route53 has it everywhere; `live` then
/// holds `to`. `no_return`: the note the runner keeps once Route53 took the change (a switch's change is its
/// point of no return; a rollout step's is not). On a timeout the records are read back: holding `to` is
/// [`Flipped::Applied`], anything else an error.
pub async fn flip(op: &mut Op<'_>, live: &mut LiveName, to: &Weights, comment: &str, way: Way, no_return: Option<&str>) -> Result<Flipped> {
    let changes = changes(live, to);
    if changes.is_empty() {
        return Ok(Flipped::Unchanged);
    }
    match way {
        Way::Guarded => {
            // From a fresh look at the load balancers: never send traffic through a record that points elsewhere.
            let lbs = env_lbs(op.cloud(), op.env()).await?;
            refuse_misdirected(op.env(), &misdirected_for(op.env(), live, to, &lbs))?;
            for m in misdirected(op.env(), &live.records, &lbs) {
                op.progress(&format!("note: {}; `release provision --env {}` points it there", m.describe(), op.env().name));
            }
            op.guard().await?;
        }
        Way::Revert => {
            // No look at the load balancers: one deleted (often why a rollout goes back) must not block the way back.
            if op.lock_lost() {
                return Err(LockHeld::LostBeforeRevert { env: op.env().name.to_string() }.into());
            }
        }
    }
    let dns = op.env().dns().map(|d| d.record.clone()).unwrap_or_default();
    op.progress(&format!("route53: one change batch for {dns}: {} -> {}", live.weights.describe_shares(), to.describe_shares()));
    let change = op.cloud().dns.submit(&live.zone, &changes, comment).await?;
    for r in live.records.weighted.iter_mut() {
        if let Ok(c) = ClusterName::parse(&r.set_identifier) {
            if to.has(&c) {
                r.weight = to.weight(&c);
            }
        }
    }
    live.weights = to.clone();
    if let Some(note) = no_return {
        op.point_of_no_return(note);
        op.step(crate::model::phase::Checkpoint::Changed)?;
    }
    wait_in_sync(op, &live.zone, &dns, &change, to, way).await
}

async fn wait_in_sync(op: &mut Op<'_>, zone: &ZoneId, dns: &str, change: &ChangeId, to: &Weights, way: Way) -> Result<Flipped> {
    let clock = op.cloud().clock.clone();
    let deadline = clock.now().add(INSYNC_TIMEOUT);
    let mut announced = false;
    loop {
        if op.cloud().dns.change_status(change).await? == ChangeStatus::InSync {
            return Ok(Flipped::InSync);
        }
        if clock.now() >= deadline {
            let set = op.cloud().dns.records(zone, dns).await?;
            let holds = set.weighted.iter().all(|r| ClusterName::parse(&r.set_identifier).map_or(true, |c| !to.has(&c) || to.weight(&c) == r.weight));
            if !holds {
                return Err(Aws::NotInSync { change: change.0.clone(), after: INSYNC_TIMEOUT }.into());
            }
            let note = format!("Route53 did not report INSYNC within {}; the records hold the new weights", format_duration(INSYNC_TIMEOUT));
            op.progress(&format!("route53 has not reported change {} INSYNC after {}, but the records hold the new weights", change.0, format_duration(INSYNC_TIMEOUT)));
            if let Ok(r) = op.record_mut() {
                r.detail = Some(note);
            }
            return Ok(Flipped::Applied);
        }
        if !announced {
            op.progress("waiting until Route53 reports the change INSYNC");
            announced = true;
        }
        match way {
            Way::Guarded => op.pause(INSYNC_POLL).await?,
            Way::Revert => op.sleep_through(INSYNC_POLL).await,
        }
    }
}

/// Creates or repoints records (`provision`: the weighted aliases of a new environment, or one that points at
/// the wrong load balancer). Not a flip: it never changes the weight of a record that exists.
pub async fn upsert_records(cloud: &Cloud, zone: &ZoneId, changes: &[RecordChange], comment: &str) -> Result<ChangeId> {
    cloud.dns.submit(zone, changes, comment).await
}
