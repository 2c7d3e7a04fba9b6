//! Deploy events: every transition of a ledger record is an [`Event`] (queued, started, a step, succeeded, failed,
//! rolled back, lost-lock, superseded, cancelled, interrupted, refused). Plain data; `engine::delivery` sends them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::clock::Timestamp;
use crate::model::ids::short_sha;
use crate::model::ledger::{Outcome, Record};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A command joined the queue (`--wait`).
    Queued,
    /// An action took the lock and began.
    Started,
    /// A step of a running action: launched, healthy, switched, ...
    Step,
    /// Done as asked.
    Succeeded,
    /// Failed (`rolled_back` says whether the environment was put back).
    Failed,
    /// The environment went back: a `release rollback`, or a rollout that undid itself.
    RolledBack,
    /// Stopped because another run took the lock.
    LostLock,
    /// A waiting command made moot by a newer one (`queue = "latest"`).
    Superseded,
    /// A waiting command whose ticket was cancelled.
    Cancelled,
    /// Stopped by Ctrl-C / SIGTERM: put back (outcome `interrupted`), or, past the point of no return, stopped at
    /// once with the record left open (outcome `started`) for a re-run, which sends the closing event.
    Interrupted,
    /// A safety check or a missing thing stopped it before it changed anything (`reason` says which).
    Refused,
}

impl EventKind {
    /// Every kind, for validation messages.
    pub const ALL: [EventKind; 11] = [
        EventKind::Queued,
        EventKind::Started,
        EventKind::Step,
        EventKind::Succeeded,
        EventKind::Failed,
        EventKind::RolledBack,
        EventKind::LostLock,
        EventKind::Superseded,
        EventKind::Cancelled,
        EventKind::Interrupted,
        EventKind::Refused,
    ];

    /// What a sink gets when its `on` is not given: the start and every way a release can end that a person must
    /// hear of (a run that lost its lock or was stopped by a signal may have left work undone).
    pub const DEFAULT: [EventKind; 7] = [
        EventKind::Started,
        EventKind::Succeeded,
        EventKind::Failed,
        EventKind::RolledBack,
        EventKind::Refused,
        EventKind::LostLock,
        EventKind::Interrupted,
    ];

    /// `rolled-back`, as in the pipeline file and the payload.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Queued => "queued",
            EventKind::Started => "started",
            EventKind::Step => "step",
            EventKind::Succeeded => "succeeded",
            EventKind::Failed => "failed",
            EventKind::RolledBack => "rolled-back",
            EventKind::LostLock => "lost-lock",
            EventKind::Superseded => "superseded",
            EventKind::Cancelled => "cancelled",
            EventKind::Interrupted => "interrupted",
            EventKind::Refused => "refused",
        }
    }

    /// The kind named `s` in a pipeline file.
    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One deploy event, as every sink receives it (the webhook's JSON body, the command's stdin, the SNS message).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub event: EventKind,
    /// For `step` events: which step (`launched`, `healthy`, `switched`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// When.
    pub at: Timestamp,
    /// The app.
    pub app: String,
    /// The environment.
    pub env: String,
    /// The cluster, when the action is about one.
    pub cluster: Option<String>,
    /// `promote`, `switch`, `rollback`, `provision`.
    pub action: String,
    /// The full commit, when the action deploys or routes one.
    pub commit: Option<String>,
    /// Its first 12 characters.
    pub commit_short: Option<String>,
    /// The commit's subject line, when known (the AMI's tag).
    pub subject: Option<String>,
    /// The AMI.
    pub ami: Option<String>,
    /// What was there before (a commit, or weights).
    pub from: String,
    /// What is there after.
    pub to: String,
    /// Who acts (CI's actor, the git user, the OS user).
    pub actor: String,
    /// The AWS caller identity (ARN).
    pub caller: String,
    /// The machine.
    pub host: String,
    /// The release id.
    pub release_id: String,
    /// The record's outcome so far.
    pub outcome: String,
    /// Why it failed: the error's one-line message.
    pub reason: Option<String>,
    /// Whether a failed action put the environment back as it was.
    pub rolled_back: Option<bool>,
    /// Seconds per phase.
    pub seconds: BTreeMap<String, f64>,
    /// Instances launched and retired.
    pub instances: InstanceCounts,
    /// `[notify] link`, when set (e.g. the dashboard).
    pub link: Option<String>,
    /// The lifecycle hooks the action ran so far: name, status, exit code, seconds (their output stays in the
    /// ledger record). A failed hook is also the `reason` of a `failed` or `rolled-back` event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<crate::model::hook::HookResult>,
    /// Break-glass: the promotion gates that were closed and went through (`--override-gates`), and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates_overridden: Option<crate::model::ledger::GatesOverridden>,
}

/// How many instances an action launched and retired.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceCounts {
    /// Launched.
    pub launched: usize,
    /// Retired.
    pub retired: usize,
}

impl Event {
    /// The event of `record` as it stands: `kind` says which transition.
    pub fn of(kind: EventKind, record: &Record, link: Option<&str>, at: Timestamp) -> Event {
        let (from, to) = record.from_to();
        let promote = record.promote_details();
        let commit = record.commit().map(|c| c.to_string());
        Event {
            event: kind,
            step: None,
            at,
            app: record.app.to_string(),
            env: record.env.to_string(),
            cluster: record.cluster().map(|c| c.to_string()),
            action: record.action_name().to_owned(),
            commit_short: commit.as_deref().map(|c| short_sha(c).to_owned()),
            commit,
            subject: promote.and_then(|p| p.subject.clone()),
            ami: promote.map(|p| p.ami.to_string()),
            from,
            to,
            actor: record.actor.clone(),
            caller: record.caller.clone(),
            host: record.host.clone(),
            release_id: record.release_id.to_string(),
            // A command in the queue has no outcome yet: its record is only written when it leaves the line.
            outcome: if kind == EventKind::Queued { "queued".to_owned() } else { record.outcome.as_str().to_owned() },
            // A record left open by a run that stopped still says why in its closing-time event.
            reason: match (record.outcome, kind) {
                (Outcome::Succeeded, _) | (Outcome::Started, EventKind::Started | EventKind::Step | EventKind::Queued) => None,
                _ => record.detail.clone(),
            },
            rolled_back: record.rolled_back,
            seconds: record.seconds.clone(),
            instances: InstanceCounts {
                launched: promote.map(|p| p.new_instances.len()).unwrap_or(0),
                retired: promote.map(|p| p.retired_instances.len()).unwrap_or(0),
            },
            link: link.map(str::to_owned),
            hooks: record.hooks.iter().map(|h| crate::model::hook::HookResult { output_tail: Vec::new(), ..h.clone() }).collect(),
            gates_overridden: record.gates_overridden.clone(),
        }
    }

    /// The kind of event a record closed with `outcome` makes. (A run stopped at once by a second signal leaves
    /// its record `started` for a re-run, which sends the closing event; the runner says `interrupted` for it.)
    pub fn closing_kind(record: &Record) -> EventKind {
        match record.outcome {
            Outcome::Refused => EventKind::Refused,
            Outcome::Succeeded if record.action_name() == "rollback" => EventKind::RolledBack,
            Outcome::Succeeded | Outcome::Abandoned => EventKind::Succeeded,
            Outcome::RolledBack => EventKind::RolledBack,
            Outcome::LostLock => EventKind::LostLock,
            Outcome::Interrupted => EventKind::Interrupted,
            Outcome::Superseded => EventKind::Superseded,
            Outcome::Cancelled => EventKind::Cancelled,
            Outcome::Failed | Outcome::Started => EventKind::Failed,
        }
    }

    /// One line for people (slack, logs): `hello/prod: promote 3f2a1b2c3d4e to prod2 failed (alice): reason`.
    pub fn headline(&self) -> String {
        let what = match (&self.commit_short, &self.cluster) {
            (Some(c), Some(cl)) => format!("{} {c} on {cl}", self.action),
            (Some(c), None) => format!("{} {c}", self.action),
            (None, Some(cl)) => format!("{} {cl}", self.action),
            (None, None) => self.action.clone(),
        };
        let kind = match (&self.step, self.event) {
            (Some(step), _) => format!("step {step}"),
            (None, k) => k.as_str().to_owned(),
        };
        let mut line = format!("{}/{}: {what} {kind} ({})", self.app, self.env, self.actor);
        if let Some(r) = &self.reason {
            line.push_str(&format!(": {r}"));
        }
        line
    }
}

