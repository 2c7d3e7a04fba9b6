//! The Route53 flip: the ONE place weights change. Every move of traffic (a switch, each rollout step and its
//! revert, a rollback switching back, a failing hook going back) is one change batch sent here.


use std::time::Duration;
use crate::model::clock::format_duration;
use crate::model::error::{Error, ErrorKind, Result};
use crate::model::ids::ClusterName;
use crate::model::weights::Weights;
use crate::ports::{ChangeStatus, RecordChange, WeightedAlias};
use crate::engine::runner::Op;
use crate::observe::world::LiveName;
use crate::observe::balancers::env_lbs;
use crate::observe::balancers::misdirected_for;
use crate::observe::balancers::refuse_misdirected;

/// How long a switch waits for Route53 to report a change INSYNC (it usually takes under a minute).
pub const INSYNC_TIMEOUT: Duration = Duration::from_secs(300);

/// How often it asks.
pub const INSYNC_POLL: Duration = Duration::from_secs(3);

/// Sends `to` as ONE change batch, then waits (through the clock) until Route53 has it everywhere. Returns
/// whether it reported INSYNC; on a timeout the records are read back: holding `to` is a success (`false`),
/// anything else an error. The change is the point of no return.
pub async fn change_weights(op: &mut Op<'_>, live: &LiveName, to: &Weights, comment: &str) -> Result<bool> {
    let changes: Vec<RecordChange> = live
        .records
        .weighted
        .iter()
        .filter(|r| to.clusters().any(|c| c.as_str() == r.set_identifier))
        .filter_map(|r| {
            let c = ClusterName::parse(&r.set_identifier).ok()?;
            let w = to.weight(&c);
            (w != r.weight).then(|| RecordChange::Upsert(WeightedAlias { weight: w, ..r.clone() }))
        })
        .collect();
    if changes.is_empty() {
        return Ok(true);
    }
    // From a fresh look at the load balancers: never send traffic through a record that points elsewhere.
    let lbs = env_lbs(op.cloud(), op.env()).await?;
    refuse_misdirected(op.env(), &misdirected_for(op.env(), live, to, &lbs))?;
    for m in crate::observe::balancers::misdirected(op.env(), &live.records, &lbs) {
        op.progress(&format!("note: {}; `release provision --env {}` points it there", m.describe(), op.env().name));
    }
    op.guard().await?;
    let dns = op.env().dns().map(|d| d.record.clone()).unwrap_or_default();
    op.progress(&format!("route53: one change batch for {dns}: {} -> {}", live.weights.describe_shares(), to.describe_shares()));
    let change = op.cloud().dns.submit(&live.zone, &changes, comment).await?;
    op.point_of_no_return("Route53 has the change");
    op.step("changed")?;
    let deadline = op.cloud().clock.now().add(INSYNC_TIMEOUT);
    let mut announced = false;
    loop {
        match op.cloud().dns.change_status(&change).await? {
            ChangeStatus::InSync => return Ok(true),
            ChangeStatus::Pending => {}
        }
        if op.cloud().clock.now() >= deadline {
            let set = op.cloud().dns.records(&live.zone, &dns).await?;
            let holds = set.weighted.iter().all(|r| ClusterName::parse(&r.set_identifier).map_or(true, |c| !to.has(&c) || to.weight(&c) == r.weight));
            if holds {
                op.progress(&format!(
                    "route53 has not reported change {} INSYNC after {}, but the records hold the new weights",
                    change.0,
                    format_duration(INSYNC_TIMEOUT)
                ));
                if let Ok(r) = op.record_mut() {
                    r.detail = Some(format!("Route53 did not report INSYNC within {}; the records hold the new weights", format_duration(INSYNC_TIMEOUT)));
                }
                return Ok(false);
            }
            return Err(Error::aws(format!(
                "route53 change {} is not in sync after {} and the records do not hold the new weights",
                change.0,
                format_duration(INSYNC_TIMEOUT)
            )));
        }
        if !announced {
            op.progress("waiting until Route53 reports the change INSYNC");
            announced = true;
        }
        op.pause(INSYNC_POLL).await?;
    }
}

/// ONE change batch setting `to`; then waits for INSYNC (bounded). `guarded`: asks AWS first that the lock is
/// still ours (a revert after Ctrl-C skips it: the signal would stop it, and the lock is checked as lost instead).
pub async fn submit(op: &mut Op<'_>, live: &mut LiveName, to: &Weights, comment: &str, guarded: bool) -> Result<()> {
    let changes: Vec<RecordChange> = live
        .records
        .weighted
        .iter()
        .filter_map(|r| {
            let c = ClusterName::parse(&r.set_identifier).ok()?;
            if !to.has(&c) {
                return None;
            }
            let w = to.weight(&c);
            (w != r.weight).then(|| RecordChange::Upsert(WeightedAlias { weight: w, ..r.clone() }))
        })
        .collect();
    if changes.is_empty() {
        return Ok(());
    }
    if guarded {
        op.guard().await?;
    } else if op.lock_lost() {
        return Err(Error::new(ErrorKind::LockHeld, format!("lost the lock of env {}; the weights were not put back", op.env().name)));
    }
    op.progress(&format!("route53: one change batch: {} -> {}", live.weights.describe_shares(), to.describe_shares()));
    let change = op.cloud().dns.submit(&live.zone, &changes, comment).await?;
    for r in live.records.weighted.iter_mut() {
        if let Ok(c) = ClusterName::parse(&r.set_identifier) {
            if to.has(&c) {
                r.weight = to.weight(&c);
            }
        }
    }
    live.weights = to.clone();
    let clock = op.cloud().clock.clone();
    let deadline = clock.now().add(crate::steps::dns::INSYNC_TIMEOUT);
    loop {
        if op.cloud().dns.change_status(&change).await? == ChangeStatus::InSync {
            return Ok(());
        }
        if clock.now() >= deadline {
            op.progress(&format!("route53 has not reported change {} INSYNC after {}; going on", change.0, format_duration(crate::steps::dns::INSYNC_TIMEOUT)));
            return Ok(());
        }
        if guarded {
            op.pause(crate::steps::dns::INSYNC_POLL).await?;
        } else {
            clock.sleep(crate::steps::dns::INSYNC_POLL).await;
        }
    }
}
