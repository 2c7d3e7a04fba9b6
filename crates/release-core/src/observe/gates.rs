//! Promotion gates: whether a commit may enter an environment now. The one judgement every operation consults
//! (promote, switch, rollouts, `plan`, `reconcile`), made from the ledger's records (approvals, freezes, vetoes,
//! promotes and switches of the environments it requires) and the pipeline's gates. Rollback never asks it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::clock::{format_duration, Timestamp};
use crate::model::error::{Refused, Result};
use crate::model::ids::{AmiId, CommitSha, EnvName};
use crate::model::ledger::{live_history, Action, GateChange, GatesOverridden, Outcome, Record};
use crate::model::pipeline::{Environment, Pipeline};
use crate::ports::{tags, Cloud, Image};

/// How many of an environment's newest records the gates read (one query): approvals, freezes and vetoes older
/// than this many actions are out of sight.
pub const GATE_RECORDS: u32 = 200;

/// One gate of an environment, judged for one commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GateState {
    /// `requires`, `soak`, `approvals`, `window`, `freeze`, `veto`.
    pub gate: &'static str,
    /// Whether it lets the commit through now.
    pub open: bool,
    /// Why (`1 of 2 (alice)`, `closed, opens Mon 09:00 Europe/Lisbon`, `frozen by bob: black friday`).
    pub reason: String,
}

impl GateState {
    /// `approvals: 1 of 2 (alice)`; a freeze and a veto say what they are themselves.
    pub fn line(&self) -> String {
        match self.gate {
            "freeze" | "veto" if !self.open => self.reason.clone(),
            _ => format!("{}: {}", self.gate, self.reason),
        }
    }
}

/// The newest complete bake allowed into an environment by its `requires`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// Its commit.
    pub commit: CommitSha,
    /// Its AMI.
    pub ami: AmiId,
    /// The commit's subject line, if the bake recorded it.
    pub subject: Option<String>,
    /// When the AMI was made (as AWS reports it).
    pub created: String,
}

/// One environment as `release plan` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct EnvGates {
    /// The environment.
    pub env: EnvName,
    /// The commit live there, from the ledger.
    pub live: Option<CommitSha>,
    /// What could enter next.
    pub candidate: Option<Candidate>,
    /// Whether every gate lets the candidate through now.
    pub eligible: bool,
    /// Every gate, judged for the candidate (freeze and window alone when there is none).
    pub gates: Vec<GateState>,
    /// Whether `release reconcile` promotes here by itself.
    pub auto: bool,
}

/// The records the gates of `envs` judge from: each environment's and those of the environments it requires, one
/// query each. A table not created yet has none.
pub async fn read(cloud: &Cloud, pipeline: &Pipeline, envs: &[&Environment]) -> Result<BTreeMap<EnvName, Vec<Record>>> {
    read_more(cloud, pipeline, envs, BTreeMap::new()).await
}

/// [`read`], with the records of some environments read already (an operation's observation): those are not read again.
async fn read_more(cloud: &Cloud, pipeline: &Pipeline, envs: &[&Environment], mut out: BTreeMap<EnvName, Vec<Record>>) -> Result<BTreeMap<EnvName, Vec<Record>>> {
    for env in envs {
        for name in std::iter::once(&env.name).chain(env.gates.requires.iter()) {
            if out.contains_key(name) {
                continue;
            }
            let records = match cloud.ledger.records(&pipeline.ledger_table, &pipeline.app, name, Some(GATE_RECORDS)).await {
                Ok(r) => r,
                Err(e) if e.is(crate::model::error::Cause::Missing) => Vec::new(),
                Err(e) => return Err(e),
            };
            out.insert(name.clone(), records);
        }
    }
    Ok(out)
}

fn gate_records<'r>(records: &'r [Record], change: &'r [GateChange]) -> impl Iterator<Item = (&'r Record, &'r crate::model::ledger::GateDetails)> + 'r {
    // Newest first, as the ledger returns them.
    records.iter().filter_map(move |r| match &r.action {
        Action::Gate(g) if r.outcome == Outcome::Succeeded && change.contains(&g.change) => Some((r, g)),
        _ => None,
    })
}

/// The veto on `commit` in these records, if one stands: its reason.
pub fn veto(records: &[Record], commit: &CommitSha) -> Option<String> {
    gate_records(records, &[GateChange::Veto, GateChange::Unveto])
        .find(|(_, g)| g.commit.as_ref() == Some(commit))
        .and_then(|(_, g)| (g.change == GateChange::Veto).then(|| g.reason.clone().unwrap_or_default()))
}

/// The freeze in force at `now`, if one: who froze and why.
pub fn freeze(records: &[Record], now: Timestamp) -> Option<(String, String, Option<Timestamp>)> {
    let (r, g) = gate_records(records, &[GateChange::Freeze, GateChange::Unfreeze]).next()?;
    (g.change == GateChange::Freeze && g.until.is_none_or(|u| u > now)).then(|| (r.actor.clone(), g.reason.clone().unwrap_or_default(), g.until))
}

/// The distinct people who approved `commit`, oldest approval first.
pub fn approvers(records: &[Record], commit: &CommitSha) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (r, _) in gate_records(records, &[GateChange::Approve]).filter(|(_, g)| g.commit.as_ref() == Some(commit)).collect::<Vec<_>>().into_iter().rev() {
        if !out.contains(&r.actor) {
            out.push(r.actor.clone());
        }
    }
    out
}

/// Whether `commit` passed an environment: promoted there successfully, and not rolled back from since (a commit an
/// operator took out of staging has not passed staging).
fn promoted(records: &[Record], commit: &CommitSha) -> bool {
    records.iter().any(|r| r.outcome == Outcome::Succeeded && matches!(&r.action, Action::Promote(p) if &p.commit == commit))
        && !rolled_back_from(records).contains(commit)
}

/// Since when `commit` has served (took all the traffic) in these records, if it has.
fn serving_since(records: &[Record], commit: &CommitSha) -> Option<Timestamp> {
    records
        .iter()
        .filter(|r| r.outcome == Outcome::Succeeded)
        .filter(|r| match &r.action {
            Action::Promote(p) => p.in_place && &p.commit == commit,
            Action::Switch(s) => s.commit.as_ref() == Some(commit) && !s.to.is_partial(),
            Action::Rollback(rb) => &rb.to == commit,
            _ => false,
        })
        .map(|r| r.finished.unwrap_or(r.started))
        .min()
}

/// Every gate of `env` for `commit` at `now`, from `ledgers` (as [`read`] returns them) and the rollout alarms of
/// the environments it requires that fire now (`firing`, as [`firing`] returns them: a soak does not count while one
/// does).
pub fn judge(env: &Environment, commit: &CommitSha, ledgers: &BTreeMap<EnvName, Vec<Record>>, firing: &[(EnvName, String)], now: Timestamp) -> Vec<GateState> {
    let none: Vec<Record> = Vec::new();
    let own = ledgers.get(&env.name).unwrap_or(&none);
    let mut out = Vec::new();
    let g = &env.gates;
    for r in &g.requires {
        let recs = ledgers.get(r).unwrap_or(&none);
        let ok = promoted(recs, commit);
        out.push(GateState { gate: "requires", open: ok, reason: if ok { format!("promoted to {r}") } else { format!("not promoted to {r} yet") } });
        if let Some(soak) = g.soak {
            let alarms: Vec<&str> = firing.iter().filter(|(e, _)| e == r).map(|(_, a)| a.as_str()).collect();
            let state = match serving_since(recs, commit) {
                Some(_) if !alarms.is_empty() => GateState { gate: "soak", open: false, reason: format!("alarm {} firing in {r}", alarms.join(", ")) },
                None => GateState { gate: "soak", open: false, reason: format!("not serving in {r} yet ({} needed)", format_duration(soak)) },
                Some(since) => {
                    let served = now.since(since);
                    if served >= soak {
                        GateState { gate: "soak", open: true, reason: format!("served {} in {r} ({} needed)", format_duration(whole_secs(served)), format_duration(soak)) }
                    } else {
                        GateState { gate: "soak", open: false, reason: format!("{} of {} left in {r}", format_duration(left(soak - served)), format_duration(soak)) }
                    }
                }
            };
            out.push(state);
        }
    }
    if g.approvals > 0 {
        let who = approvers(own, commit);
        let n = who.len() as u32;
        let names = if who.is_empty() { String::new() } else { format!(" ({})", who.join(", ")) };
        out.push(GateState { gate: "approvals", open: n >= g.approvals, reason: format!("{n} of {}{names}", g.approvals) });
    }
    out.extend(window(env, now));
    out.push(freeze_state(own, now));
    out.push(match veto(own, commit) {
        Some(why) => GateState { gate: "veto", open: false, reason: format!("vetoed: {why}") },
        None => GateState { gate: "veto", open: true, reason: "not vetoed".into() },
    });
    out
}

fn whole_secs(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs())
}

/// What is left of a wait, as people count it: whole minutes rounded up (`20m`, not `19m59s`), seconds under a minute.
fn left(d: std::time::Duration) -> std::time::Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    if secs >= 60 {
        std::time::Duration::from_secs(secs.div_ceil(60) * 60)
    } else {
        std::time::Duration::from_secs(secs)
    }
}

/// The window gate, if the environment has windows.
fn window(env: &Environment, now: Timestamp) -> Option<GateState> {
    let ws = &env.gates.windows;
    if ws.is_empty() {
        return None;
    }
    if let Some(w) = ws.iter().find(|w| w.is_open(now)) {
        return Some(GateState { gate: "window", open: true, reason: format!("open ({})", w.text()) });
    }
    let next = ws.iter().filter_map(|w| w.next_open(now).map(|t| (t, w))).min_by_key(|(t, _)| *t);
    let reason = match next.and_then(|(_, w)| w.describe_next(now)) {
        Some(at) => format!("closed, opens {at}"),
        None => "closed".into(),
    };
    Some(GateState { gate: "window", open: false, reason })
}

fn freeze_state(own: &[Record], now: Timestamp) -> GateState {
    match freeze(own, now) {
        Some((who, why, until)) => {
            let until = until.map(|u| format!(" (until {u})")).unwrap_or_default();
            GateState { gate: "freeze", open: false, reason: format!("frozen by {who}: {why}{until}") }
        }
        None => GateState { gate: "freeze", open: true, reason: "not frozen".into() },
    }
}

/// The rollout alarms (`[env.NAME.rollout] alarms`) of the environments `env` requires that are in ALARM now, as
/// (environment, alarm), in one DescribeAlarms call; none asked when `env` has no soak or they watch no alarm.
pub async fn firing(cloud: &Cloud, pipeline: &Pipeline, env: &Environment) -> Result<Vec<(EnvName, String)>> {
    if env.gates.soak.is_none() {
        return Ok(Vec::new());
    }
    let mut watched: Vec<(EnvName, String)> = Vec::new();
    for r in &env.gates.requires {
        if let Some(rollout) = pipeline.envs.iter().find(|e| &e.name == r).and_then(|e| e.rollout.as_ref()) {
            watched.extend(rollout.alarms.iter().map(|a| (r.clone(), a.clone())));
        }
    }
    if watched.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = watched.iter().map(|(_, a)| a.clone()).collect();
    let states = crate::observe::alarms::read(cloud, &names).await?;
    Ok(watched.into_iter().zip(states).filter(|(_, s)| s.state == crate::ports::AlarmState::Alarm).map(|(w, _)| w).collect())
}

/// The closed gates among `states`, as lines.
pub fn closed(states: &[GateState]) -> Vec<String> {
    states.iter().filter(|s| !s.open).map(GateState::line).collect()
}

/// Refuses (exit 4, naming each closed gate) unless every gate of `env` lets `commit` through now, or `override_reason`
/// breaks glass: then what it went through, for the record. `seen`: the environment's recent records, when the
/// operation read them already (then only the environments it `requires` are read: one query each).
pub async fn check(
    cloud: &Cloud,
    pipeline: &Pipeline,
    env: &Environment,
    commit: &CommitSha,
    what: &str,
    override_reason: Option<&str>,
    seen: Option<&[Record]>,
) -> Result<Option<GatesOverridden>> {
    let known = seen.map(|r| BTreeMap::from([(env.name.clone(), r.to_vec())])).unwrap_or_default();
    let ledgers = read_more(cloud, pipeline, &[env], known).await?;
    let firing = firing(cloud, pipeline, env).await?;
    let closed = closed(&judge(env, commit, &ledgers, &firing, cloud.clock.now()));
    match (closed.is_empty(), override_reason) {
        (true, _) => Ok(None),
        (false, Some(reason)) => Ok(Some(GatesOverridden { reason: reason.to_owned(), closed })),
        (false, None) => Err(Refused::GateClosed { what: what.to_owned(), closed }.into()),
    }
}

/// The complete bakes of the app, newest first.
pub fn bakes(images: &[Image]) -> Vec<&Image> {
    let mut out: Vec<&Image> = images.iter().filter(|i| i.is_complete_bake() && i.tags.contains_key(tags::COMMIT)).collect();
    // Ties (bakes within one second) by name, then id: the same order every reader sees.
    out.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)).then(b.id.as_str().cmp(a.id.as_str())));
    out
}

fn commit_of(i: &Image) -> Option<CommitSha> {
    i.tags.get(tags::COMMIT).and_then(|c| CommitSha::parse(c).ok())
}

/// The newest complete bake `requires` lets into `env` (any bake when it requires nothing); `skip` leaves out
/// commits (reconcile: vetoed ones and ones rolled back from).
pub fn candidate(env: &Environment, bakes: &[&Image], ledgers: &BTreeMap<EnvName, Vec<Record>>, skip: impl Fn(&CommitSha) -> bool) -> Option<Candidate> {
    let none: Vec<Record> = Vec::new();
    bakes.iter().find_map(|i| {
        let commit = commit_of(i)?;
        let allowed = env.gates.requires.iter().all(|r| promoted(ledgers.get(r).unwrap_or(&none), &commit));
        (allowed && !skip(&commit)).then(|| Candidate {
            commit,
            ami: i.id.clone(),
            subject: i.tags.get(tags::SUBJECT).cloned(),
            created: i.created.clone(),
        })
    })
}

/// The commit live in an environment, from its records.
pub fn live(records: &[Record]) -> Option<CommitSha> {
    live_history(records).last().map(|l| l.commit.clone())
}

/// Commits an operator rolled back from in these records (reconcile never promotes them again).
pub fn rolled_back_from(records: &[Record]) -> Vec<CommitSha> {
    records
        .iter()
        .filter(|r| r.outcome == Outcome::Succeeded)
        .filter_map(|r| match &r.action {
            Action::Rollback(rb) => rb.from.clone(),
            _ => None,
        })
        .collect()
}

/// `release plan`: per environment (or the one named) its live commit, its candidate and every gate, from one
/// describe of the app's images and one ledger query per environment, however many bakes there are.
pub async fn plan(cloud: &Cloud, pipeline: &Pipeline, only: Option<&Environment>) -> Result<Vec<EnvGates>> {
    let envs: Vec<&Environment> = match only {
        Some(e) => vec![e],
        None => pipeline.envs.iter().collect(),
    };
    let ledgers = read(cloud, pipeline, &envs).await?;
    let images = cloud.images.app_images(&pipeline.app).await?;
    let bakes = bakes(&images);
    let now = cloud.clock.now();
    let none: Vec<Record> = Vec::new();
    let mut alarms = BTreeMap::new();
    for env in &envs {
        alarms.insert(env.name.clone(), firing(cloud, pipeline, env).await?);
    }
    Ok(envs
        .into_iter()
        .map(|env| {
            let own = ledgers.get(&env.name).unwrap_or(&none);
            let live = live(own);
            let candidate = candidate(env, &bakes, &ledgers, |_| false);
            let gates = match &candidate {
                Some(c) => judge(env, &c.commit, &ledgers, alarms.get(&env.name).map(Vec::as_slice).unwrap_or_default(), now),
                None => window(env, now).into_iter().chain([freeze_state(own, now)]).collect(),
            };
            let eligible = candidate.as_ref().is_some_and(|c| Some(&c.commit) != live.as_ref()) && gates.iter().all(|g| g.open);
            EnvGates { env: env.name.clone(), live, candidate, eligible, gates, auto: env.gates.auto }
        })
        .collect())
}
