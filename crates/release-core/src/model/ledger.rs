//! Ledger records and locks: what happened to an environment, and who may change it now (DESIGN §4).
//!
//! One record per action, typed by action: a promote's from/to are commits, a switch's are weights. Every record
//! names its `holder`, the run (lock token) allowed to write it; writes are conditional on it, so a run that lost
//! its lock can neither overwrite the record of the run that took over nor clean up what that run adopted.
//!
//! The *live history* of an environment ([`live_history`]) is derived from the records: the stack of releases that
//! were live, newest on top. Rollback goes one step down it; gc keeps what it may go back to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::clock::Timestamp;
use crate::model::ids::{short_sha, AmiId, AppName, ClusterName, CommitSha, EnvName, InstanceId, ReleaseId};
use crate::model::weights::RolloutStep;
use crate::model::weights::Weights;

/// How an action ended (or that it has not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Under way, or its process died; the next run of the same command resumes or cleans it up.
    Started,
    /// Done as asked.
    Succeeded,
    /// Failed; `rolled_back` in the detail says whether the environment was put back.
    Failed,
    /// Interrupted (Ctrl-C/SIGTERM) and put back.
    Interrupted,
    /// Found unfinished by a later run, and cleaned up.
    Abandoned,
    /// Stopped because another run took the lock (broken with `unlock --force`, or a lease that lapsed).
    LostLock,
    /// A rollout that went back by itself (an alarm, lost health, a failing hook).
    RolledBack,
    /// A waiting command that never ran: a newer waiting promote took its place (`queue = "latest"`).
    Superseded,
    /// A waiting command that never ran: its ticket was cancelled (`release queue cancel`).
    Cancelled,
    /// A safety check or a missing thing (an alarm firing, a live target, no AMI) stopped it before it changed
    /// anything.
    Refused,
}

impl PartialEq<&str> for Outcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Outcome {
    /// Stable name (ledger, JSON, history).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Started => "started",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::Abandoned => "abandoned",
            Outcome::LostLock => "lost-lock",
            Outcome::RolledBack => "rolled-back",
            Outcome::Superseded => "superseded",
            Outcome::Cancelled => "cancelled",
            Outcome::Refused => "refused",
        }
    }

    /// Every outcome, in the order of the documentation.
    pub const ALL: [Outcome; 10] = [
        Outcome::Started,
        Outcome::Succeeded,
        Outcome::Failed,
        Outcome::Interrupted,
        Outcome::Abandoned,
        Outcome::LostLock,
        Outcome::RolledBack,
        Outcome::Superseded,
        Outcome::Cancelled,
        Outcome::Refused,
    ];

    /// The outcome of this stable name (`--outcome failed`).
    pub fn parse(s: &str) -> Result<Outcome, crate::Error> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s).ok_or_else(|| {
            crate::model::error::Input::Outcome { given: s.to_owned(), known: Outcome::ALL.iter().map(|o| o.as_str().to_owned()).collect() }.into()
        })
    }

    /// Whether the action is over.
    pub fn is_final(self) -> bool {
        self != Outcome::Started
    }
}

/// What a promote did to one cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromoteDetails {
    /// The cluster replaced.
    pub cluster: ClusterName,
    /// The commit deployed.
    pub commit: CommitSha,
    /// Its AMI.
    pub ami: AmiId,
    /// The commit the cluster ran before, if one.
    pub from: Option<CommitSha>,
    /// Hash of the environment's resolved settings (tag `release:config`).
    pub config_hash: String,
    /// Whether the cluster takes traffic directly (an environment without dns): such a promote changes what is live.
    pub in_place: bool,
    /// Instances launched for this release.
    #[serde(default)]
    pub new_instances: Vec<InstanceId>,
    /// Old instances deregistered and terminated.
    #[serde(default)]
    pub retired_instances: Vec<InstanceId>,
    /// Instances of this app found in the cluster's load balancer that were not the cluster's, retired with the old.
    #[serde(default)]
    pub strays_retired: Vec<InstanceId>,
    /// The cluster's own instances found terminated outside release (by hand?) while still in its load balancer,
    /// deregistered with the old.
    #[serde(default)]
    pub terminated_by_hand: Vec<InstanceId>,
    /// Batches completed (`--batch`).
    #[serde(default)]
    pub batches_done: u32,
    /// The commit's subject line, when the AMI carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Old instances taken out of the load balancer and not yet terminated, with when each deregistration began.
    /// Written before deregistering, so that a run resuming an interrupted drain waits out only what is left of
    /// `drain` (and a blue/green promote whose `before_traffic` hook fails knows what to register again).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub draining: BTreeMap<InstanceId, Timestamp>,
    /// An asg cluster's promote (issue 22): the launch template version and group it made, and the group it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<GroupsDetail>,
}

/// The Auto Scaling groups of an asg promote, as its record keeps them: what a re-run, a rollback inside the window
/// and `history` read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsDetail {
    /// The launch template (`<app>-<cluster>`), by id.
    pub template: String,
    /// The version made for this release.
    pub version: u32,
    /// The group made for this release (`<app>-<cluster>-v<NNN>`).
    pub group: String,
    /// Its desired capacity.
    pub desired: u32,
    /// The group that served before, disabled by this release (none for a first group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
    /// The replaced group's MinSize before it was pinned to its desired capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_min: Option<u32>,
}

/// What a switch did to the live name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SwitchDetails {
    /// The cluster traffic was sent to.
    pub cluster: ClusterName,
    /// Weights before.
    pub from: Weights,
    /// Weights after.
    pub to: Weights,
    /// The commit the target cluster runs.
    pub commit: Option<CommitSha>,
    /// What was live before (primary cluster and its commit), so history knows what a rollback goes back to.
    pub previous: Option<LiveRelease>,
    /// A switch in steps (a rollout): its plan and how far it got, the journal a re-run resumes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutState>,
}

impl SwitchDetails {
    /// Whether Route53 holds what this switch asked for: the one judgement of "applied" for a switch whose process
    /// died (its plan and the run that closes its record both ask here).
    pub fn applied(&self, now: &Weights) -> bool {
        self.to == *now
    }
}

/// How a rollback went back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackPath {
    /// A gradual shift was under way: the weights from before it were restored; no instance touched.
    RestoreWeights,
    /// The previous release still runs, healthy, on an idle cluster: one switch.
    SwitchBack,
    /// The previous release was promoted to the idle cluster, then switched to.
    PromoteThenSwitch,
    /// An environment without dns: the previous commit was promoted in place.
    InPlace,
    /// An asg cluster inside the rollback window: the previous release's disabled group was enabled again and the
    /// current one disabled; nothing launched.
    EnableGroup,
}

impl RollbackPath {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackPath::RestoreWeights => "restore-weights",
            RollbackPath::SwitchBack => "switch-back",
            RollbackPath::PromoteThenSwitch => "promote-then-switch",
            RollbackPath::InPlace => "in-place",
            RollbackPath::EnableGroup => "enable-group",
        }
    }
}

/// What a rollback did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RollbackDetails {
    /// How.
    pub path: RollbackPath,
    /// The commit live before the rollback.
    pub from: Option<CommitSha>,
    /// The commit live after it.
    pub to: CommitSha,
    /// The commit it made live (`to` again), under the name every record uses for it, so that the ledger and
    /// `history --output json` name it without a rule per action. Absent from records written before it existed.
    #[serde(default)]
    pub commit: Option<CommitSha>,
    /// The cluster that takes the traffic after it.
    pub cluster: ClusterName,
    /// Weights before and after (blue/green).
    pub from_weights: Option<Weights>,
    /// Weights after.
    pub to_weights: Option<Weights>,
    /// The promote it made, if it made one.
    pub promote: Option<PromoteDetails>,
    /// An asg rollback inside the window: the group it enabled (`group`) and the one it disabled (`replaced`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<GroupsDetail>,
}

/// What `provision` changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProvisionDetails {
    /// One line per change made.
    pub changes: Vec<String>,
}

/// The action a record is about, with what only that action has.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// `release promote`.
    Promote(PromoteDetails),
    /// `release switch`.
    Switch(SwitchDetails),
    /// `release rollback`.
    Rollback(RollbackDetails),
    /// `release provision`.
    Provision(ProvisionDetails),
    /// A `--wait` command that left the queue without running (superseded or cancelled).
    Queued(QueuedDetails),
    /// `release rollout continue` or `release rollback` asking the run that holds a rollout to go on or go back.
    RolloutRequest(RolloutRequestDetails),
    /// `release gc`: what it removed (recorded in the first environment of the app, holding every one's lock).
    Gc(GcDetails),
    /// `release approve`, `freeze`, `unfreeze`, `veto`, `unveto`: a promotion gate's state changed.
    Gate(GateDetails),
}

impl Action {
    /// `promote`, `switch`, `rollback`, `provision`; a queued command's own action.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Promote(_) => "promote",
            Action::Switch(_) => "switch",
            Action::Rollback(_) => "rollback",
            Action::Provision(_) => "provision",
            Action::Queued(q) => q.command.as_str(),
            Action::RolloutRequest(_) => "rollout",
            Action::Gc(_) => "gc",
            Action::Gate(g) => g.change.as_str(),
        }
    }
}

/// What a command waiting in the queue is about to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TicketAction {
    /// `release promote --wait`.
    Promote,
    /// `release switch --wait`.
    Switch,
    /// `release rollback --wait`.
    Rollback,
}

impl TicketAction {
    /// `promote`, `switch`, `rollback`.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketAction::Promote => "promote",
            TicketAction::Switch => "switch",
            TicketAction::Rollback => "rollback",
        }
    }
}

/// A command that waited in the queue and left it without running.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueuedDetails {
    /// What it was going to do (not named `action`: that is the record's own tag).
    pub command: TicketAction,
    /// The commit it was going to deploy, if any.
    #[serde(default)]
    pub commit: Option<CommitSha>,
    /// The cluster it named, if any (switch).
    #[serde(default)]
    pub cluster: Option<ClusterName>,
    /// The ticket that superseded it.
    #[serde(default)]
    pub superseded_by: Option<ReleaseId>,
    /// How long it waited, in seconds.
    pub waited: f64,
}

/// A command waiting for an environment's lock (`--wait`): one item per waiter (`sk = queue#<arrival>#<id>`),
/// leased like the lock and renewed while it waits, so that a waiter that died leaves the queue by itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The app.
    pub app: AppName,
    /// The environment.
    pub env: EnvName,
    /// The waiting run's id: the ticket's name (`release queue cancel <id>`) and the release id it runs as.
    pub id: ReleaseId,
    /// When it joined the queue: tickets are served in this order.
    pub arrival: Timestamp,
    /// Who waits (actor name).
    pub holder: String,
    /// The waiter's machine.
    pub host: String,
    /// The waiter's process id on that machine.
    #[serde(default)]
    pub pid: Option<u32>,
    /// What it will do.
    pub action: TicketAction,
    /// The commit it will deploy, if any.
    #[serde(default)]
    pub commit: Option<CommitSha>,
    /// In words: `promote 3f2a… to prod`.
    pub doing: String,
    /// The lease: a ticket not renewed by then is ignored (its waiter is presumed dead) by every reader, even a
    /// command that does not wait.
    pub expires: Timestamp,
    /// When its waiter last renewed it (by the waiter's clock; the arrival for a ticket written before this was
    /// kept). Each renewal changes it: a waiter behind it that sees it unchanged for a few renewal periods on its
    /// own clock skips it as dead, long before its lease runs out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed: Option<Timestamp>,
    /// Set when its command took the lock: it no longer waits, and older promotes of a `latest` queue that yielded
    /// to it leave. Removed when the command ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Timestamp>,
}

impl Ticket {
    /// The ticket's sort key: arrival order, then id.
    pub fn sort_key(&self) -> String {
        format!("queue#{:015}#{}", self.arrival.millis(), self.id)
    }

    /// Whether it still waits at `now`: its waiter renews it and its command has not started.
    pub fn is_waiting(&self, now: Timestamp) -> bool {
        self.expires >= now && self.started.is_none()
    }

    /// When its waiter last renewed it.
    pub fn last_renewed(&self) -> Timestamp {
        self.renewed.unwrap_or(self.arrival)
    }

    /// Whether `other` is this ticket as it was: not renewed since.
    pub fn same_renewal(&self, other: &Ticket) -> bool {
        self.id == other.id && self.renewed == other.renewed && self.expires == other.expires
    }
}

/// One action on one environment. Written when it starts, at each step, and when it ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The app.
    pub app: AppName,
    /// The environment.
    pub env: EnvName,
    /// Identifies the action (tags, ledger).
    pub release_id: ReleaseId,
    /// The run allowed to write this record: the lock token of the run that opened it, or of the run that adopted
    /// it after a crash. Writes are conditional on it.
    pub holder: ReleaseId,
    /// CI's actor, else the git user, else the OS user.
    pub actor: String,
    /// The AWS caller identity (ARN).
    pub caller: String,
    /// The machine it ran on.
    pub host: String,
    /// When it started.
    pub started: Timestamp,
    /// When it ended.
    pub finished: Option<Timestamp>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed, or what was adopted or cleaned up.
    pub detail: Option<String>,
    /// Past a safety check with `--force`.
    #[serde(default)]
    pub forced: bool,
    /// For a failed action: whether the environment was put back as it was.
    #[serde(default)]
    pub rolled_back: Option<bool>,
    /// Seconds per phase.
    #[serde(default)]
    pub seconds: BTreeMap<String, f64>,
    /// What the action does now, written at each poll so that any machine can show it (status, dashboard).
    #[serde(default)]
    pub progress: Option<Progress>,
    /// Events that no sink of `[notify]` took (after its retries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify_failures: Vec<crate::model::ledger::NotifyFailure>,
    /// The lifecycle hooks this action ran, in order (`[env.NAME.hooks]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<crate::model::hook::HookResult>,
    /// The hook started and not yet ended, while it runs (a re-run must not start a second copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_running: Option<crate::model::hook::HookInFlight>,
    /// `--override-gates --reason TEXT`: the gates that were closed and went through, and why (break-glass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates_overridden: Option<GatesOverridden>,
    /// The action and what only it has.
    #[serde(flatten)]
    pub action: Action,
}

/// A running operation's progress: its phase and each instance's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// What it does now (`waiting-healthy`, `draining`, `hook-before_traffic`, ...).
    pub phase: crate::model::phase::Phase,
    /// What it waits for, in words (`healthy 37/50`).
    pub waiting_for: Option<String>,
    /// When the phase began.
    pub phase_started: Option<Timestamp>,
    /// Instance id -> state (`pending`, `running`, `registered`, `healthy`, `draining`, `terminated`).
    #[serde(default)]
    pub instances: BTreeMap<String, String>,
    /// When this was written.
    pub updated: Option<Timestamp>,
}

impl Record {
    /// The sort key: records of one environment sort by start time.
    pub fn sort_key(&self) -> String {
        format!("rec#{:015}#{}", self.started.millis(), self.release_id)
    }

    /// The action's name.
    pub fn action_name(&self) -> &'static str {
        self.action.name()
    }

    /// The promote this record made (a promote, or a rollback that promoted).
    pub fn promote_details(&self) -> Option<&PromoteDetails> {
        match &self.action {
            Action::Promote(p) => Some(p),
            Action::Rollback(r) => r.promote.as_ref(),
            _ => None,
        }
    }

    /// Replaces the promote details of a promote, or of a rollback that promotes.
    pub fn set_promote_details(&mut self, details: &PromoteDetails) {
        match &mut self.action {
            Action::Promote(p) => *p = details.clone(),
            Action::Rollback(r) => r.promote = Some(details.clone()),
            _ => {}
        }
    }

    /// The cluster the action is about, if one.
    pub fn cluster(&self) -> Option<&ClusterName> {
        match &self.action {
            Action::Promote(p) => Some(&p.cluster),
            Action::Switch(s) => Some(&s.cluster),
            Action::Rollback(r) => Some(&r.cluster),
            Action::Provision(_) => None,
            Action::Queued(q) => q.cluster.as_ref(),
            Action::RolloutRequest(r) => Some(&r.cluster),
            Action::Gc(_) => None,
            Action::Gate(_) => None,
        }
    }

    /// The commit the action deploys or sends traffic to, if one.
    pub fn commit(&self) -> Option<&CommitSha> {
        match &self.action {
            Action::Promote(p) => Some(&p.commit),
            Action::Switch(s) => s.commit.as_ref(),
            Action::Rollback(r) => r.commit.as_ref().or(Some(&r.to)),
            Action::Provision(_) => None,
            Action::Queued(q) => q.commit.as_ref(),
            Action::RolloutRequest(_) => None,
            Action::Gc(_) => None,
            Action::Gate(g) => g.commit.as_ref(),
        }
    }

    /// `from -> to` as people read it: commits for promotes and rollbacks, weights for switches.
    pub fn from_to(&self) -> (String, String) {
        let sha = |c: Option<&CommitSha>| c.map(|c| short_sha(c.as_str()).to_owned()).unwrap_or_else(|| "-".into());
        match &self.action {
            Action::Promote(p) => (sha(p.from.as_ref()), sha(Some(&p.commit))),
            Action::Switch(s) => (s.from.describe(), s.to.describe()),
            Action::Rollback(r) => (sha(r.from.as_ref()), sha(Some(&r.to))),
            Action::Provision(p) => ("-".into(), format!("{} change(s)", p.changes.len())),
            Action::Queued(q) => ("-".into(), q.commit.as_ref().map(|c| short_sha(c.as_str()).to_owned()).or_else(|| q.cluster.as_ref().map(|c| c.to_string())).unwrap_or_else(|| "-".into())),
            Action::RolloutRequest(r) => (r.rollout.to_string(), r.request.as_str().to_owned()),
            Action::Gc(g) => (format!("{} image(s)", g.planned_images.len()), format!("{} removed", g.removed_images.len())),
            Action::Gate(g) => ("-".into(), g.commit.as_ref().map(|c| short_sha(c.as_str()).to_owned()).or_else(|| g.reason.clone()).unwrap_or_else(|| "-".into())),
        }
    }
}

/// The partition key of an environment's records, lock and queue.
pub fn partition_key(app: &AppName, env: &EnvName) -> String {
    format!("{app}#{env}")
}

/// The partition key of an app's index of environments (so `history` finds environments removed from the file).
pub fn index_key(app: &AppName) -> String {
    format!("index#{app}")
}

/// The lock of one environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The app.
    pub app: AppName,
    /// The environment.
    pub env: EnvName,
    /// Who holds it (actor name).
    pub holder: String,
    /// The holder's run: the lock token. Renew and release are conditional on it.
    pub release_id: ReleaseId,
    /// What the holder is doing (`promote 3f2a… to prod2`).
    #[serde(default)]
    pub doing: String,
    /// The holder's machine.
    pub host: String,
    /// The holder's process id on that machine (so `unlock` on the same machine can tell it is gone).
    #[serde(default)]
    pub pid: Option<u32>,
    /// When it was first taken.
    pub acquired: Timestamp,
    /// When it was last renewed.
    #[serde(default)]
    pub renewed: Option<Timestamp>,
    /// When the lease runs out by its holder's clock: a hint for people and for a holder judged on its own
    /// machine; takers do not compare it with their clock (see `lease`).
    pub expires: Timestamp,
    /// The lease version (the DynamoDB lock client's record version number): 1 when taken, one more at each
    /// renewal. A taker takes a held lock only after it saw the same version, unchanged, for a whole lease on its
    /// own clock, with a write conditional on that version, so clocks need not agree. 0 in a lock written before
    /// versions (its `expires` changes at each renewal instead).
    #[serde(default)]
    pub lease: u64,
}

impl LockInfo {
    /// Whether the lease ran out at `now` by the reader's clock: its holder stopped renewing it (presumed dead).
    /// A judgement for people (`status`, `unlock`'s message), exact only on the holder's own machine: another
    /// machine's clock may be minutes off.
    pub fn is_stale(&self, now: Timestamp) -> bool {
        self.expires < now
    }

    /// Whether `other` is this very lease: the same holder, version and expiry (nothing renewed it since).
    pub fn same_lease(&self, other: &LockInfo) -> bool {
        self.release_id == other.release_id && self.lease == other.lease && self.expires == other.expires
    }
}

/// Who is acting: for the ledger and the lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// CI's actor, the git user or the OS user.
    pub name: String,
    /// The AWS caller identity (ARN).
    pub caller: String,
    /// This machine.
    pub host: String,
    /// This process.
    #[serde(default)]
    pub pid: Option<u32>,
}

/// A release that was live: a commit and the cluster that served it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveRelease {
    /// The commit.
    pub commit: CommitSha,
    /// The cluster it was live on (blue/green), if known.
    pub cluster: Option<ClusterName>,
    /// The record that made it live.
    pub release_id: Option<ReleaseId>,
}

/// The stack of releases that were live in an environment, oldest at the bottom, from its records (any order).
///
/// Each action that changes what is live pushes its release: a promote in place, a switch that sends all traffic
/// to one cluster, a rollback. Pushing a commit already on the stack *returns* to it: everything above it was
/// rolled away from and is dropped. So repeated rollbacks walk v3 -> v2 -> v1 and never come back to v3 unless it
/// is deployed again. Gradual shifts (a switch to less than 100 %) change nothing here.
///
/// ```
/// # use release_core::model::ledger::*;
/// # use release_core::model::ids::*;
/// # use release_core::model::clock::Timestamp;
/// # let sha = |c: char| CommitSha::parse(&c.to_string().repeat(40)).unwrap();
/// # let promote = |t: i64, c: char| Record {
/// #     app: AppName::parse("a").unwrap(), env: EnvName::parse("staging").unwrap(),
/// #     release_id: ReleaseId::from_string(format!("r{t}")), holder: ReleaseId::from_string(format!("r{t}")),
/// #     actor: "ci".into(), caller: String::new(), host: String::new(), started: Timestamp::from_millis(t),
/// #     finished: None, outcome: Outcome::Succeeded, detail: None, forced: false, rolled_back: None,
/// #     seconds: Default::default(), progress: None, notify_failures: Vec::new(), hooks: Vec::new(), hook_running: None, gates_overridden: None,
/// #     action: Action::Promote(PromoteDetails { cluster: ClusterName::parse("staging").unwrap(), commit: sha(c),
/// #         ami: AmiId::parse("ami-1").unwrap(), from: None, config_hash: String::new(), in_place: true,
/// #         new_instances: vec![], retired_instances: vec![], strays_retired: vec![], terminated_by_hand: vec![], batches_done: 0,
/// #         subject: None, draining: Default::default(), groups: None }) };
/// let records = vec![promote(1, 'a'), promote(2, 'b'), promote(3, 'c'), promote(4, 'b')];
/// let stack = live_history(&records);
/// // c was rolled away from (b is live again): the next rollback goes to a.
/// assert_eq!(stack.iter().map(|r| &r.commit.as_str()[..1]).collect::<Vec<_>>(), ["a", "b"]);
/// ```
pub fn live_history(records: &[Record]) -> Vec<LiveRelease> {
    let mut sorted: Vec<&Record> = records.iter().filter(|r| r.outcome == Outcome::Succeeded).collect();
    sorted.sort_by(|a, b| a.started.cmp(&b.started).then(a.release_id.cmp(&b.release_id)));
    let mut stack: Vec<LiveRelease> = Vec::new();
    let push = |stack: &mut Vec<LiveRelease>, r: LiveRelease| {
        match stack.iter().position(|x| x.commit == r.commit) {
            Some(i) => {
                stack.truncate(i + 1);
                // The same commit, live again: remember where it runs now.
                stack[i] = r;
            }
            None => stack.push(r),
        }
    };
    for r in sorted {
        match &r.action {
            Action::Promote(p) if p.in_place => push(
                &mut stack,
                LiveRelease { commit: p.commit.clone(), cluster: Some(p.cluster.clone()), release_id: Some(r.release_id.clone()) },
            ),
            Action::Switch(s) => {
                let full = s.to.live() == vec![&s.cluster] && !s.to.is_partial();
                if !full {
                    continue;
                }
                if stack.is_empty() {
                    if let Some(prev) = &s.previous {
                        stack.push(prev.clone());
                    }
                }
                if let Some(commit) = &s.commit {
                    push(&mut stack, LiveRelease { commit: commit.clone(), cluster: Some(s.cluster.clone()), release_id: Some(r.release_id.clone()) });
                }
            }
            Action::Rollback(rb) => {
                if stack.is_empty() {
                    if let Some(from) = &rb.from {
                        stack.push(LiveRelease { commit: from.clone(), cluster: None, release_id: None });
                    }
                }
                push(&mut stack, LiveRelease { commit: rb.to.clone(), cluster: Some(rb.cluster.clone()), release_id: Some(r.release_id.clone()) })
            }
            _ => {}
        }
    }
    stack
}

/// Where a rollback from `live` goes: the release below it on the stack.
pub fn rollback_target<'s>(stack: &'s [LiveRelease], live: &CommitSha) -> Option<&'s LiveRelease> {
    let i = stack.iter().rposition(|r| &r.commit == live)?;
    i.checked_sub(1).map(|j| &stack[j])
}

/// During a gradual shift, the weights from before it began: follow the switches that led to `current` back to
/// the last weights with one cluster live. `None` when the ledger does not tell.
pub fn weights_before_shift(records: &[Record], current: &Weights) -> Option<Weights> {
    let mut switches: Vec<&SwitchDetails> = Vec::new();
    let mut sorted: Vec<&Record> = records.iter().filter(|r| r.outcome == Outcome::Succeeded).collect();
    sorted.sort_by(|a, b| b.started.cmp(&a.started).then(b.release_id.cmp(&a.release_id)));
    for r in sorted {
        if let Action::Switch(s) = &r.action {
            switches.push(s);
        }
    }
    let mut want = current.clone();
    for _ in 0..switches.len() {
        let s = switches.iter().find(|s| s.to == want)?;
        if !s.from.is_partial() && !s.from.live().is_empty() {
            return Some(s.from.clone());
        }
        if s.from == want {
            return None;
        }
        want = s.from.clone();
    }
    None
}

/// How far a rollout got: the journal in its switch record. Every step's weights are derived from `from` (the
/// weights before the rollout) by [`Weights::after_switch`], so a re-run recomputes them and never restarts lower.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    /// The steps, as planned.
    pub steps: Vec<RolloutStep>,
    /// Seconds each step is watched.
    pub pause: f64,
    /// CloudWatch alarms watched.
    #[serde(default)]
    pub alarms: Vec<String>,
    /// The index of the step reached (its weights are in Route53, or it is the hold waited at); `None` before the
    /// first change.
    #[serde(default)]
    pub step: Option<usize>,
    /// When the watch of that step began (`rollout status` counts the time left from it).
    #[serde(default)]
    pub since: Option<Timestamp>,
    /// Waiting at a `"hold"` for `rollout continue` or `rollback`.
    #[serde(default)]
    pub holding: bool,
    /// Why it went back (`alarm acme-5xx went to ALARM at step 50%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a rollout request asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutRequestKind {
    /// Go past the hold.
    Continue,
    /// Go back to the weights from before the rollout.
    Rollback,
}

impl RolloutRequestKind {
    /// `continue` or `rollback`.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutRequestKind::Continue => "continue",
            RolloutRequestKind::Rollback => "rollback",
        }
    }
}

/// A request to the run holding a rollout (which has the lock, so others cannot write its record): a record of its
/// own, which that run looks for at each poll and which stays in the history as who asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutRequestDetails {
    /// The rollout's release id.
    pub rollout: ReleaseId,
    /// What is asked.
    pub request: RolloutRequestKind,
    /// The rollout's target cluster.
    pub cluster: ClusterName,
}

/// A change of a promotion gate's state, kept as a record of its own (written with a condition that no record of
/// that id exists, without the environment's lock: approving prod must not wait for a deploy running there).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateDetails {
    /// What changed.
    pub change: GateChange,
    /// The commit approved, vetoed or unvetoed.
    #[serde(default)]
    pub commit: Option<CommitSha>,
    /// The freeze's or veto's reason, or the approval's note.
    #[serde(default)]
    pub reason: Option<String>,
    /// When a freeze ends by itself (`--until`); none: until `unfreeze`.
    #[serde(default)]
    pub until: Option<Timestamp>,
}

/// Which gate change a [`GateDetails`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateChange {
    /// One person approves one commit for one environment.
    Approve,
    /// Nothing is promoted or switched to in the environment until unfrozen (or `until`).
    Freeze,
    /// Ends a freeze.
    Unfreeze,
    /// The commit is never promoted again anywhere (written to every environment of the app).
    Veto,
    /// Lifts a veto.
    Unveto,
}

impl GateChange {
    /// `approve`, `freeze`, `unfreeze`, `veto`, `unveto`.
    pub fn as_str(self) -> &'static str {
        match self {
            GateChange::Approve => "approve",
            GateChange::Freeze => "freeze",
            GateChange::Unfreeze => "unfreeze",
            GateChange::Veto => "veto",
            GateChange::Unveto => "unveto",
        }
    }
}

/// What a break-glass `--override-gates` went through.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GatesOverridden {
    /// `--reason`.
    pub reason: String,
    /// The gates that were closed, each with its reason (`approvals: 1 of 2 (alice)`).
    #[serde(default)]
    pub closed: Vec<String>,
}

/// What `release gc` removed, written before each deletion and after it, so a run that dies leaves a record
/// saying what it was about to remove (a re-run finishes it: deregistered images' snapshots are found by tag).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GcDetails {
    /// `--keep`.
    pub keep: u32,
    /// `--older-than`, as given.
    pub older_than: String,
    /// Every environment whose lock the run held (the record lives in the first).
    #[serde(default)]
    pub envs: Vec<EnvName>,
    /// Images the plan removes.
    #[serde(default)]
    pub planned_images: Vec<AmiId>,
    /// Images deregistered, with their snapshots deleted.
    #[serde(default)]
    pub removed_images: Vec<AmiId>,
    /// Snapshots deleted (of the images above, and ones whose image was already gone).
    #[serde(default)]
    pub removed_snapshots: Vec<String>,
    /// Orphan instances terminated.
    #[serde(default)]
    pub terminated: Vec<InstanceId>,
}

/// The unfinished rollout record among `records` (newest first), with its details.
pub fn unfinished(records: &[Record]) -> Option<(&Record, &SwitchDetails, &RolloutState)> {
    records.iter().filter(|r| r.outcome == Outcome::Started).find_map(|r| match &r.action {
        Action::Switch(s) => s.rollout.as_ref().map(|st| (r, s, st)),
        _ => None,
    })
}

/// The weights from before the rollout that left traffic split, for `rollback`: the unfinished rollout of a dead
/// run, else the newest switch when it is a rollout that stopped without going back (it lost its lock: the holder
/// stops where it is, since the lock is no longer its to change traffic under).
pub fn weights_before(records: &[Record]) -> Option<Weights> {
    unfinished(records).map(|(_, s, _)| s.from.clone()).or_else(|| {
        let newest = records.iter().filter(|r| matches!(r.action, Action::Switch(_))).max_by_key(|r| (r.started, r.release_id.clone()))?;
        match &newest.action {
            Action::Switch(s) if s.rollout.is_some() && newest.outcome == Outcome::LostLock && !s.from.is_partial() && !s.from.live().is_empty() => Some(s.from.clone()),
            _ => None,
        }
    })
}

/// A rollout step as people say it: `10%`, `hold at 10%`, `start`.
pub fn step_name(steps: &[RolloutStep], i: Option<usize>) -> String {
    match i.and_then(|i| steps.get(i)) {
        Some(RolloutStep::Percent(p)) => format!("{p}%"),
        Some(RolloutStep::Hold) => format!("hold at {}", share_before(steps, i.unwrap_or(0))),
        None => "start".into(),
    }
}

/// The commit of the newest in-place promote when it was stopped between batches (closed `failed`, not put back,
/// with batches done): the environment serves it together with the commit before it.
pub fn stopped_between_batches(records: &[Record]) -> Option<crate::model::ids::CommitSha> {
    let newest = records.iter().filter(|r| matches!(r.action, Action::Promote(_) | Action::Rollback(_))).max_by_key(|r| r.started)?;
    let d = newest.promote_details()?;
    (d.in_place && newest.outcome == Outcome::Failed && newest.rolled_back == Some(false) && d.batches_done > 0).then(|| d.commit.clone())
}

/// How many recent records a promote reads to find unfinished runs and when a cluster was last live.
pub const RECENT_RECORDS: u32 = 50;

/// The share before step `i`: the last percent step before it.
pub fn share_before(steps: &[RolloutStep], i: usize) -> String {
    steps[..i]
        .iter()
        .rev()
        .find_map(|s| match s {
            RolloutStep::Percent(p) => Some(format!("{p}%")),
            RolloutStep::Hold => None,
        })
        .unwrap_or_else(|| "0%".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_is_in_all_and_parses_from_its_name() {
        // Exhaustive: a new outcome fails to compile here until it is counted, then this fails until it is in ALL
        // (`history --outcome refused` was refused once because ALL lagged behind the enum).
        let index = |o: Outcome| match o {
            Outcome::Started => 0,
            Outcome::Succeeded => 1,
            Outcome::Failed => 2,
            Outcome::Interrupted => 3,
            Outcome::Abandoned => 4,
            Outcome::LostLock => 5,
            Outcome::RolledBack => 6,
            Outcome::Superseded => 7,
            Outcome::Cancelled => 8,
            Outcome::Refused => 9,
        };
        let mut seen: Vec<usize> = Outcome::ALL.iter().map(|o| index(*o)).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()).unwrap(), o);
        }
    }

    fn sha(c: char) -> CommitSha {
        CommitSha::parse(&c.to_string().repeat(40)).unwrap()
    }

    fn cl(s: &str) -> ClusterName {
        ClusterName::parse(s).unwrap()
    }

    fn w(pairs: &[(&str, u8)]) -> Weights {
        Weights::new(pairs.iter().map(|(n, v)| (cl(n), *v)))
    }

    fn rec(t: i64, action: Action) -> Record {
        Record {
            app: AppName::parse("a").unwrap(),
            env: EnvName::parse("prod").unwrap(),
            release_id: ReleaseId::from_string(format!("r{t:03}")),
            holder: ReleaseId::from_string(format!("r{t:03}")),
            actor: "ci".into(),
            caller: String::new(),
            host: String::new(),
            started: Timestamp::from_millis(t),
            finished: None,
            outcome: Outcome::Succeeded,
            detail: None,
            forced: false,
            rolled_back: None,
            seconds: BTreeMap::new(),
            progress: None,
            notify_failures: Vec::new(),
            hooks: Vec::new(),
            hook_running: None, gates_overridden: None,
            action,
        }
    }

    /// Records are stored field by field (DynamoDB attributes): no field of an action may collide with the
    /// record's own (the `action` tag first of all), or the record reads back as something else.
    #[test]
    fn every_kind_of_record_reads_back_as_written() {
        let queued = rec(
            1,
            Action::Queued(QueuedDetails { command: TicketAction::Promote, commit: Some(sha('a')), cluster: None, superseded_by: Some(ReleaseId::from_string("r9".into())), waited: 2.5 }),
        );
        let provision = rec(2, Action::Provision(ProvisionDetails { changes: vec!["create x".into()] }));
        for r in [queued, provision, switch(3, "blue", 'b', w(&[("blue", 0), ("green", 100)]), w(&[("blue", 100), ("green", 0)]), Some(("green", 'a')))] {
            let json = serde_json::to_value(&r).unwrap();
            let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
            let text = serde_json::to_string(&r).unwrap();
            assert_eq!(text.matches("\"action\":").count(), 1, "one `action` key: {text}");
            let back: Record = serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("{e}: {keys:?}"));
            assert_eq!(back, r);
        }
    }

    fn switch(t: i64, to: &str, commit: char, from: Weights, weights: Weights, prev: Option<(&str, char)>) -> Record {
        rec(
            t,
            Action::Switch(SwitchDetails {
                cluster: cl(to),
                from,
                to: weights,
                commit: Some(sha(commit)),
                previous: prev.map(|(c, s)| LiveRelease { commit: sha(s), cluster: Some(cl(c)), release_id: None }),
                rollout: None,
            }),
        )
    }

    fn rollback(t: i64, to: char, cluster: &str) -> Record {
        rec(
            t,
            Action::Rollback(RollbackDetails {
                path: RollbackPath::SwitchBack,
                from: None,
                to: sha(to),
                commit: Some(sha(to)),
                cluster: cl(cluster),
                from_weights: None,
                to_weights: None,
                promote: None,
                groups: None,
            }),
        )
    }

    fn commits(stack: &[LiveRelease]) -> String {
        stack.iter().map(|r| &r.commit.as_str()[..1]).collect()
    }

    #[test]
    fn repeated_rollbacks_walk_down_and_never_toggle() {
        let b100 = w(&[("blue", 100), ("green", 0)]);
        let g100 = w(&[("blue", 0), ("green", 100)]);
        let mut records = vec![
            switch(1, "green", '1', b100.clone(), g100.clone(), None),
            switch(2, "blue", '2', g100.clone(), b100.clone(), Some(("green", '1'))),
            switch(3, "green", '3', b100.clone(), g100.clone(), Some(("blue", '2'))),
        ];
        let stack = live_history(&records);
        assert_eq!(commits(&stack), "123");
        assert_eq!(rollback_target(&stack, &sha('3')).unwrap().commit, sha('2'));
        records.push(rollback(4, '2', "blue"));
        let stack = live_history(&records);
        assert_eq!(commits(&stack), "12");
        assert_eq!(rollback_target(&stack, &sha('2')).unwrap().commit, sha('1'), "the second rollback goes to v1, not v3");
        records.push(rollback(5, '1', "green"));
        let stack = live_history(&records);
        assert_eq!(commits(&stack), "1");
        assert!(rollback_target(&stack, &sha('1')).is_none(), "nothing before v1");
    }

    #[test]
    fn the_first_switch_remembers_what_was_live_before_it() {
        let records = vec![switch(1, "green", '2', w(&[("blue", 100), ("green", 0)]), w(&[("blue", 0), ("green", 100)]), Some(("blue", '1')))];
        let stack = live_history(&records);
        assert_eq!(commits(&stack), "12");
        assert_eq!(rollback_target(&stack, &sha('2')).unwrap().cluster, Some(cl("blue")));
    }

    #[test]
    fn gradual_shifts_do_not_change_the_history_and_restore_their_start() {
        let start = w(&[("blue", 100), ("green", 0)]);
        let ten = w(&[("blue", 90), ("green", 10)]);
        let fifty = w(&[("blue", 50), ("green", 50)]);
        let records = vec![
            switch(1, "green", '2', start.clone(), ten.clone(), Some(("blue", '1'))),
            switch(2, "green", '2', ten.clone(), fifty.clone(), Some(("blue", '1'))),
        ];
        assert!(live_history(&records).is_empty());
        assert_eq!(weights_before_shift(&records, &fifty), Some(start.clone()));
        assert_eq!(weights_before_shift(&records, &ten), Some(start));
        assert_eq!(weights_before_shift(&records, &w(&[("blue", 70), ("green", 30)])), None);
    }

    #[test]
    fn failed_records_are_not_history() {
        let mut r = switch(1, "green", '2', w(&[("blue", 100), ("green", 0)]), w(&[("blue", 0), ("green", 100)]), Some(("blue", '1')));
        r.outcome = Outcome::Failed;
        assert!(live_history(&[r]).is_empty());
    }
}

/// A delivery that failed for good, as noted on the ledger record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyFailure {
    /// The sink (`webhook https://hooks.example.com/…`; never a secret).
    pub sink: String,
    /// The event.
    pub event: String,
    /// The last error.
    pub error: String,
}
