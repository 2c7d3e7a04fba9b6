//! Lifecycle hooks (`[env.NAME.hooks]`) as data: hook points, settings, results, the run in flight, and the
//! `RELEASE_*` variables a hook is told. Running one is `steps::hooks`; where a deploy calls them is its op
//! (`ops::promote::hooks`, `ops::switch::hooks`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::clock::Timestamp;
use crate::model::error::{Deploy, Error};

/// Default `hook_timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Lines of a hook's output kept in the ledger record.
pub const TAIL_LINES: usize = 20;
/// Bytes of a hook's output kept in the ledger record (the newest lines win).
pub const TAIL_BYTES: usize = 4096;

/// The three hook points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookName {
    /// Once, before launching.
    BeforePromote,
    /// The new fleet is up, before it takes traffic.
    BeforeTraffic,
    /// After the new fleet took the traffic.
    AfterTraffic,
}

impl HookName {
    /// The key in the pipeline file, and the name in output and the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            HookName::BeforePromote => "before_promote",
            HookName::BeforeTraffic => "before_traffic",
            HookName::AfterTraffic => "after_traffic",
        }
    }
}

impl std::fmt::Display for HookName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[env.NAME.hooks]`. An empty command is no hook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookSettings {
    /// Run once before launching.
    pub before_promote: Option<String>,
    /// Run when the new fleet is up and takes no traffic.
    pub before_traffic: Option<String>,
    /// Run after the new fleet took the traffic.
    pub after_traffic: Option<String>,
    /// How long a hook may run before it is killed (`hook_timeout`).
    #[serde(serialize_with = "crate::model::clock::ser_duration")]
    pub timeout: Duration,
    /// `rollback_on_hook_failure` as written; see [`HookSettings::rollback_on_failure`] for the default.
    pub rollback_on_failure: Option<bool>,
}

impl Default for HookSettings {
    fn default() -> Self {
        Self { before_promote: None, before_traffic: None, after_traffic: None, timeout: DEFAULT_TIMEOUT, rollback_on_failure: None }
    }
}

impl HookSettings {
    /// The command of a hook point, if one is set.
    pub fn command(&self, name: HookName) -> Option<&str> {
        match name {
            HookName::BeforePromote => self.before_promote.as_deref(),
            HookName::BeforeTraffic => self.before_traffic.as_deref(),
            HookName::AfterTraffic => self.after_traffic.as_deref(),
        }
        .filter(|c| !c.trim().is_empty())
    }

    /// Whether a failing `after_traffic` hook sends the traffic back: as written, else yes for blue/green (one
    /// Route53 change) and no in place (going back there is a whole promote of the previous commit).
    pub fn rollback_on_failure(&self, blue_green: bool) -> bool {
        self.rollback_on_failure.unwrap_or(blue_green)
    }

    /// Whether any hook is set.
    pub fn any(&self) -> bool {
        [HookName::BeforePromote, HookName::BeforeTraffic, HookName::AfterTraffic].iter().any(|n| self.command(*n).is_some())
    }
}

/// How a hook ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookStatus {
    /// Exit status 0.
    Succeeded,
    /// A non-zero exit status, or killed by a signal it did not get from us.
    Failed,
    /// Ran past `hook_timeout`; its process group was killed.
    TimedOut,
    /// Stopped by Ctrl-C/SIGTERM (or a lost lock); its process group was killed.
    Interrupted,
    /// Could not be started.
    Error,
}

impl HookStatus {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            HookStatus::Succeeded => "succeeded",
            HookStatus::Failed => "failed",
            HookStatus::TimedOut => "timed-out",
            HookStatus::Interrupted => "interrupted",
            HookStatus::Error => "error",
        }
    }
}

/// One hook run, as the ledger record keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HookResult {
    /// Which hook point.
    pub name: HookName,
    /// The command as written.
    pub command: String,
    /// How it ended.
    pub status: HookStatus,
    /// Its exit status, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// How long it ran.
    pub seconds: f64,
    /// The last lines of its output (stdout and stderr), at most [`TAIL_LINES`] lines and [`TAIL_BYTES`] bytes.
    #[serde(default)]
    pub output_tail: Vec<String>,
}

impl HookResult {
    /// Whether the hook passed.
    pub fn passed(&self) -> bool {
        self.status == HookStatus::Succeeded
    }

    /// `hook before_traffic (./smoke) failed with exit status 3 after 1.2s: <last line>`.
    pub fn describe(&self) -> String {
        let how = match (self.status, self.exit_code, self.signal) {
            (HookStatus::Succeeded, _, _) => "succeeded".to_owned(),
            (HookStatus::TimedOut, _, _) => "timed out and was killed".to_owned(),
            (HookStatus::Interrupted, _, _) => "was interrupted and killed".to_owned(),
            (HookStatus::Error, _, _) => "could not be started".to_owned(),
            (HookStatus::Failed, Some(c), _) => format!("failed with exit status {c}"),
            (HookStatus::Failed, None, Some(s)) => format!("failed: killed by signal {s}"),
            (HookStatus::Failed, None, None) => "failed".to_owned(),
        };
        let last = self.output_tail.iter().rev().find(|l| !l.trim().is_empty()).map(|l| format!(": {}", one_line(l, 200))).unwrap_or_default();
        format!("hook {} (`{}`) {how} after {:.1}s{last}", self.name, one_line(&self.command, 80), self.seconds)
    }
}

/// A hook's process, as the record keeps it while the hook runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookProcess {
    /// The process `release` started (`sh -c`).
    pub pid: u32,
    /// Its process group, which holds whatever it started.
    pub pgid: u32,
    /// Its start time (clock ticks after boot, `/proc/PID/stat` field 22): a reused pid has another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
}

/// A hook started and not yet known to have ended. It is in the record from right before it starts until its
/// result is saved, so that a re-run after `release` died (kill -9, a lost machine) knows it may still be running
/// and does not start a second copy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HookInFlight {
    /// Which hook point.
    pub name: HookName,
    /// The command as written.
    pub command: String,
    /// The machine it runs on.
    pub host: String,
    /// When it was started.
    pub started: Timestamp,
    /// `started + hook_timeout`: its run kills it by then, if that run still lives.
    pub deadline: Timestamp,
    /// Its process, once started (`None`: the run died between recording it and starting it, or cannot tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<HookProcess>,
}

impl HookInFlight {
    /// `hook before_traffic (`./smoke`, pid 123 on build-1, started 12s ago)`.
    pub fn describe(&self, now: Timestamp) -> String {
        let pid = self.process.as_ref().map(|p| format!("pid {} ", p.pid)).unwrap_or_default();
        format!("hook {} (`{}`, {pid}on {}, started {}s ago)", self.name, one_line(&self.command, 80), self.host, now.since(self.started).as_secs())
    }

    /// Whether it may still be running, and why (`None`: provably not). On this machine the hook runner looks at
    /// the process (its group, and its start time against pid reuse); elsewhere, or when it cannot tell, only the
    /// deadline can say it ended.
    pub fn may_run(&self, here: bool, alive: impl FnOnce(&HookProcess) -> Option<bool>, now: Timestamp) -> Option<String> {
        if here {
            if let Some(p) = &self.process {
                match alive(p) {
                    Some(true) => return Some(format!("{} still runs (process group {})", self.describe(now), p.pgid)),
                    Some(false) => return None,
                    None => {}
                }
            }
        }
        (now < self.deadline).then(|| {
            format!(
                "{} may still run until {} (its hook_timeout){}",
                self.describe(now),
                self.deadline,
                if here { "" } else { "; it runs on another machine, which this one cannot look at" }
            )
        })
    }
}

fn one_line(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars().take(max).collect::<String>() + "…"
    }
}

/// What a hook is told, as `RELEASE_*` variables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HookContext {
    /// RELEASE_APP.
    pub app: String,
    /// RELEASE_ENV.
    pub env: String,
    /// RELEASE_CLUSTER: the cluster being promoted to or switched to.
    pub cluster: String,
    /// RELEASE_COMMIT: the commit being deployed.
    pub commit: String,
    /// RELEASE_PREVIOUS_COMMIT: the commit live before this release (empty when none).
    pub previous_commit: String,
    /// RELEASE_AMI.
    pub ami: String,
    /// RELEASE_ID: the ledger record's release id.
    pub release_id: String,
    /// RELEASE_LB_DNS: the DNS name of the cluster's load balancer.
    pub lb_dns: String,
    /// RELEASE_INSTANCE_IDS: the new fleet, space-separated (empty before launching).
    pub instance_ids: Vec<String>,
    /// RELEASE_LIVE_NAME: the environment's public name (dns record without the final dot; in place: the load
    /// balancer's DNS name).
    pub live_name: String,
}

impl HookContext {
    /// The variables, by name.
    pub fn vars(&self) -> BTreeMap<String, String> {
        [
            ("RELEASE_APP", self.app.clone()),
            ("RELEASE_ENV", self.env.clone()),
            ("RELEASE_CLUSTER", self.cluster.clone()),
            ("RELEASE_COMMIT", self.commit.clone()),
            ("RELEASE_PREVIOUS_COMMIT", self.previous_commit.clone()),
            ("RELEASE_AMI", self.ami.clone()),
            ("RELEASE_ID", self.release_id.clone()),
            ("RELEASE_LB_DNS", self.lb_dns.clone()),
            ("RELEASE_INSTANCE_IDS", self.instance_ids.join(" ")),
            ("RELEASE_LIVE_NAME", self.live_name.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// The error a failed `before_*` hook is: a deploy that failed (exit 8), naming the hook.
pub fn failed(result: &HookResult) -> Error {
    Error::from(Deploy::Hook { hook: result.name.to_string(), what: result.describe() }).with_details(result.output_tail.iter().map(|l| format!("[hook {}] {l}", result.name)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_commands_are_no_hooks_and_rollback_defaults_to_blue_green() {
        let s = HookSettings { before_traffic: Some("  ".into()), after_traffic: Some("./smoke".into()), ..Default::default() };
        assert_eq!(s.command(HookName::BeforeTraffic), None);
        assert_eq!(s.command(HookName::AfterTraffic), Some("./smoke"));
        assert!(s.rollback_on_failure(true));
        assert!(!s.rollback_on_failure(false));
        let s = HookSettings { rollback_on_failure: Some(false), ..Default::default() };
        assert!(!s.rollback_on_failure(true));
    }
}
