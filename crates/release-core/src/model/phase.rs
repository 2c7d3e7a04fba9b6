//! The names an operation's progress is told in: the checkpoints a test's crash hook can stop the engine at, the
//! phase `status` and the board show, and the laps a promote's time is split into. Each is an enum so that a
//! misspelt name is a compile error; each renders the name the ledger, the JSON output and `RELEASE_TEST_CRASH_AT`
//! have always used.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::hook::HookName;

/// A point where an operation can be stopped as a crash would stop it (tests' `RELEASE_TEST_CRASH_AT`, the
/// in-memory crash hook), in the order they are passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checkpoint {
    /// The runner took the lock.
    Locked,
    /// gc took every environment's lock.
    LockedAll,
    /// The operation's record is in the ledger.
    Recorded,
    /// A promote's instances were launched.
    Launched,
    /// … and are running.
    Running,
    /// … and are registered with the load balancer.
    Registered,
    /// … and are healthy there.
    Healthy,
    /// The old instances left the load balancer.
    DeregisteredOld,
    /// … and drained.
    Drained,
    /// … and were terminated.
    TerminatedOld,
    /// Route53 has a switch's change.
    Changed,
    /// Route53 has a rollout's step to this percentage, the record not yet.
    ChangedStep(u8),
    /// The record has a rollout's step to this percentage.
    Step(u8),
    /// The record has a rollout's hold.
    Hold,
    /// A hook ended and the record says how.
    Hook {
        /// Which hook.
        hook: HookName,
        /// Whether it passed.
        passed: bool,
    },
    /// gc deregistered an image.
    Deregistered,
    /// A bake's AMI exists, not yet tagged.
    Baked,
    /// The body ended; the record is about to be closed.
    Finished,
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Checkpoint::Locked => f.write_str("locked"),
            Checkpoint::LockedAll => f.write_str("locked-all"),
            Checkpoint::Recorded => f.write_str("recorded"),
            Checkpoint::Launched => f.write_str("launched"),
            Checkpoint::Running => f.write_str("running"),
            Checkpoint::Registered => f.write_str("registered"),
            Checkpoint::Healthy => f.write_str("healthy"),
            Checkpoint::DeregisteredOld => f.write_str("deregistered-old"),
            Checkpoint::Drained => f.write_str("drained"),
            Checkpoint::TerminatedOld => f.write_str("terminated-old"),
            Checkpoint::Changed => f.write_str("changed"),
            Checkpoint::ChangedStep(p) => write!(f, "changed-{p}"),
            Checkpoint::Step(p) => write!(f, "step-{p}"),
            Checkpoint::Hold => f.write_str("hold"),
            Checkpoint::Hook { hook, passed } => {
                write!(f, "hook-{}{}", hook.as_str().replace('_', "-"), if *passed { "" } else { "-failed" })
            }
            Checkpoint::Deregistered => f.write_str("deregistered"),
            Checkpoint::Baked => f.write_str("baked"),
            Checkpoint::Finished => f.write_str("finished"),
        }
    }
}

/// What a running operation does now (`Progress::phase`), as `status` and the board show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Phase {
    /// A promote launched its instances and waits for them to run.
    Launched,
    /// … waits for them to run.
    WaitingRunning,
    /// … waits for them to be healthy behind the load balancer.
    WaitingHealthy,
    /// … drains the old instances.
    Draining,
    /// … terminated the old instances.
    TerminatedOld,
    /// A rollout holds or watches its alarms between steps.
    Rollout,
    /// An in-place promote watches alarms between batches.
    BetweenBatches,
    /// A lifecycle hook runs.
    Hook(HookName),
    /// A phase this version does not know: a record written by a newer `release`, shown as it was written.
    Other(String),
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Launched => f.write_str("launched"),
            Phase::WaitingRunning => f.write_str("waiting-running"),
            Phase::WaitingHealthy => f.write_str("waiting-healthy"),
            Phase::Draining => f.write_str("draining"),
            Phase::TerminatedOld => f.write_str("terminated-old"),
            Phase::Rollout => f.write_str("rollout"),
            Phase::BetweenBatches => f.write_str("between-batches"),
            Phase::Hook(h) => write!(f, "hook-{h}"),
            Phase::Other(s) => f.write_str(s),
        }
    }
}

impl From<String> for Phase {
    fn from(s: String) -> Self {
        let known = [Phase::Launched, Phase::WaitingRunning, Phase::WaitingHealthy, Phase::Draining, Phase::TerminatedOld, Phase::Rollout, Phase::BetweenBatches]
            .into_iter()
            .chain([HookName::BeforePromote, HookName::BeforeTraffic, HookName::AfterTraffic].map(Phase::Hook));
        known.into_iter().find(|p| p.to_string() == s).unwrap_or(Phase::Other(s))
    }
}

/// `progress.phase == "waiting-healthy"`: the name as the ledger and JSON write it.
impl PartialEq<&str> for Phase {
    fn eq(&self, other: &&str) -> bool {
        self.to_string() == *other
    }
}

impl From<Phase> for String {
    fn from(p: Phase) -> Self {
        p.to_string()
    }
}

impl Default for Phase {
    fn default() -> Self {
        Phase::Other(String::new())
    }
}

/// Where a promote's time went: the keys of the record's and the report's `seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lap {
    /// Launching instances (every round).
    Launch,
    /// Waiting for them to run.
    WaitRunning,
    /// Registering them with the load balancer.
    Register,
    /// Waiting for them to be healthy.
    WaitHealthy,
    /// Deregistering, draining and terminating the old ones.
    Retire,
    /// A lifecycle hook.
    Hook(HookName),
}

impl fmt::Display for Lap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lap::Launch => f.write_str("launch"),
            Lap::WaitRunning => f.write_str("wait-running"),
            Lap::Register => f.write_str("register"),
            Lap::WaitHealthy => f.write_str("wait-healthy"),
            Lap::Retire => f.write_str("retire"),
            Lap::Hook(h) => write!(f, "hook-{h}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_ones_the_ledger_and_the_tests_have_always_used() {
        assert_eq!(Checkpoint::Hook { hook: HookName::AfterTraffic, passed: false }.to_string(), "hook-after-traffic-failed");
        assert_eq!(Checkpoint::ChangedStep(10).to_string(), "changed-10");
        assert_eq!(Phase::Hook(HookName::BeforeTraffic).to_string(), "hook-before_traffic");
        assert_eq!(Lap::Hook(HookName::BeforePromote).to_string(), "hook-before_promote");
        for p in ["waiting-healthy", "hook-after_traffic", "between-batches", "something-newer"] {
            assert_eq!(Phase::from(p.to_owned()).to_string(), p);
        }
        assert_eq!(Phase::from("draining".to_owned()), Phase::Draining);
        let json = serde_json::to_string(&Phase::WaitingRunning).unwrap();
        assert_eq!(json, "\"waiting-running\"");
        assert_eq!(serde_json::from_str::<Phase>("\"rollout\"").unwrap(), Phase::Rollout);
    }
}

/// `total` seconds of a phase with a lap of `secs` added, in whole milliseconds (the clock's resolution): laps summed
/// as f64 would show as `0.009000000000000001` in `--output json`.
///
/// ```
/// # use release_core::model::phase::add_lap;
/// assert_eq!(0.001 + 0.008, 0.009000000000000001);
/// assert_eq!(add_lap(0.001, 0.008), 0.009);
/// assert_eq!(add_lap(4.2, 0.0509999), 4.251);
/// ```
pub fn add_lap(total: f64, secs: f64) -> f64 {
    ((total + secs) * 1000.0).round() / 1000.0
}
