//! The environment's lock: who may change it now. Taken by the runner (directly or after a turn in the queue),
//! renewed by the runner's watcher, judged (stale, gone, live) by `unlock`, `status` and rollouts.

use std::time::Duration;

use crate::model::clock::Timestamp;
use crate::model::error::{Error, Failure, LockHeld, Result};
use crate::model::ids::{CommitSha, EnvName, ReleaseId};
use crate::model::ledger::{LockInfo, Outcome, Record};
use crate::model::pipeline::{Environment, Pipeline};

use crate::engine::session::Session;

/// How long a lock lives without renewal: a dead holder blocks an environment for at most this long.
pub const LOCK_LEASE: Duration = Duration::from_secs(120);
/// How often the runner renews a lock it holds.
pub const RENEW_EVERY: Duration = Duration::from_secs(30);

/// What a run holds the lock of: an environment (every command but bake), or one commit's bakes
/// ([`BakeLock`]). Its name keys the lock item and the run's records (`<app>#<name>`).
pub trait Scope: Sync {
    /// The name of its lock (an environment's name, or a name no environment can have).
    fn lock_name(&self) -> &EnvName;
    /// What it is, for messages: `env staging`.
    fn describe(&self) -> String;
    /// What a run of it does when the first Ctrl-C stops it: `putting env staging back as it was`.
    fn on_interrupt(&self) -> String;
}

impl Scope for Environment {
    fn lock_name(&self) -> &EnvName {
        &self.name
    }

    fn describe(&self) -> String {
        format!("env {}", self.name)
    }

    fn on_interrupt(&self) -> String {
        format!("putting env {} back as it was", self.name)
    }
}

/// The lock of one commit's bakes: an item beside the environments' locks, keyed by [`EnvName::for_bakes_of`], so
/// that two bakes of the same commit never race (one removing as a failed bake's the AMI the other is making),
/// while bakes of other commits, and the environments, do not wait for it.
pub struct BakeLock {
    name: EnvName,
    commit: CommitSha,
}

impl BakeLock {
    /// The lock of `commit`'s bakes.
    pub fn new(commit: &CommitSha) -> Self {
        Self { name: EnvName::for_bakes_of(commit), commit: commit.clone() }
    }
}

impl Scope for BakeLock {
    fn lock_name(&self) -> &EnvName {
        &self.name
    }

    fn describe(&self) -> String {
        format!("the bakes of {}", self.commit.short())
    }

    fn on_interrupt(&self) -> String {
        "leaving at most an AMI without its bake key, which the next bake of the same inputs removes".to_owned()
    }
}

/// Takes the lock of `bakes` for `run_id`, or says who is baking that commit now. `None` before the app's ledger
/// table exists (no environment provisioned, nothing deployed): there is nowhere to keep a lock yet, and the
/// bake runs without one.
pub async fn acquire_bake(session: &Session, pipeline: &Pipeline, bakes: &BakeLock, run_id: &ReleaseId, doing: &str) -> Result<Option<LockInfo>> {
    if !session.cloud.ledger.table_exists(&pipeline.ledger_table).await? {
        return Ok(None);
    }
    let held = match take_now(session, pipeline, bakes.lock_name(), run_id, doing, &bakes.describe()).await? {
        Ok(info) => return Ok(Some(info)),
        Err(held) => held,
    };
    let now = session.cloud.clock.now();
    Err(LockHeld::Baking {
        commit: bakes.commit.short().to_owned(),
        holder: held.holder,
        since: held.acquired,
        release_id: held.release_id.to_string(),
        host: held.host,
        expires: (held.expires >= now).then_some(held.expires),
    }
    .into())
}

/// The lock item a run of `session` writes to hold the lock named `name` (an environment's, or [`BakeLock`]'s).
pub fn lock_info(session: &Session, pipeline: &Pipeline, name: &EnvName, run_id: &ReleaseId, doing: &str) -> LockInfo {
    let now = session.cloud.clock.now();
    LockInfo {
        app: pipeline.app.clone(),
        env: name.clone(),
        holder: session.actor.name.clone(),
        release_id: run_id.clone(),
        doing: doing.to_owned(),
        host: session.actor.host.clone(),
        pid: session.actor.pid,
        acquired: now,
        renewed: Some(now),
        expires: now.add(LOCK_LEASE),
        lease: 1,
    }
}

/// A lock another run holds, as a would-be taker watches it on its own clock (the DynamoDB lock client's rule):
/// its holder renews it every [`RENEW_EVERY`], each renewal a new version ([`LockInfo::lease`]); the same version
/// seen unchanged for a whole [`LOCK_LEASE`] on this machine's clock means its holder stopped renewing, and so
/// stopped working (the runner stops a run whose renewals fail a renewal period before its lease runs out on
/// its own clock). Clocks need not agree, only tick at the same rate; the holder's `expires` is never compared
/// with this clock.
#[derive(Clone, Debug, Default)]
pub struct LeaseWatch(Unchanged<LockInfo>);

impl LeaseWatch {
    /// Notes `held` as read at `now` (this machine's clock); how long this very lease has been seen unchanged.
    pub fn unchanged_for(&mut self, held: &LockInfo, now: Timestamp) -> Duration {
        self.0.unchanged_for(held, now, LockInfo::same_lease)
    }

    /// Whether the lease changed while watched: its holder (or a new one) is alive.
    pub fn saw_renewal(&self) -> bool {
        self.0.changes > 0
    }
}

/// Something another process renews (a lease, a queue ticket), as this process watches it on its own clock: the
/// version last seen and since when it has been seen unchanged. No other clock is compared.
#[derive(Clone, Debug)]
pub struct Unchanged<T> {
    /// The version seen, and when (this machine's clock) it was first seen.
    seen: Option<(T, Timestamp)>,
    /// How many times the version seen changed after the first sight.
    changes: u32,
}

impl<T> Default for Unchanged<T> {
    fn default() -> Self {
        Unchanged { seen: None, changes: 0 }
    }
}

impl<T: Clone> Unchanged<T> {
    /// Notes `now_seen` as read at `now`; how long this very version (`same`) has been seen unchanged.
    pub fn unchanged_for(&mut self, now_seen: &T, now: Timestamp, same: impl Fn(&T, &T) -> bool) -> Duration {
        match &self.seen {
            Some((seen, since)) if same(seen, now_seen) => now.since(*since),
            previous => {
                self.changes += u32::from(previous.is_some());
                self.seen = Some((now_seen.clone(), now));
                Duration::ZERO
            }
        }
    }
}

/// Tries once to take the lock `info`: free, it is taken; held by a lease `watch` has seen unchanged for a whole
/// [`LOCK_LEASE`], or by a holder that died on this machine (it ran on this clock, so its expiry is a fact here),
/// it is taken over with a write conditional on that very lease. `None` when taken, else the holder.
pub async fn try_take(session: &Session, table: &str, info: &LockInfo, watch: &mut LeaseWatch) -> Result<Option<LockInfo>> {
    let locks = &session.cloud.lock;
    let Some(held) = locks.acquire(table, info, None).await? else { return Ok(None) };
    let now = session.cloud.clock.now();
    let lapsed = watch.unchanged_for(&held, now) >= LOCK_LEASE;
    let died_here = held.is_stale(now) && (session.holder_gone)(&held);
    if !lapsed && !died_here {
        return Ok(Some(held));
    }
    locks.acquire(table, info, Some(&held)).await
}

/// Takes the lock `name` for `run_id` without queueing: at once when it is free; a lease that looks run out by
/// this machine's clock is watched for a whole lease first (its holder's clock may only be behind) and taken over
/// if no renewal came, refused if one did. `Ok` with the lock taken, `Err` with its holder.
async fn take_now(session: &Session, pipeline: &Pipeline, name: &EnvName, run_id: &ReleaseId, doing: &str, what: &str) -> Result<std::result::Result<LockInfo, LockInfo>> {
    let table = &pipeline.ledger_table;
    let mut watch = LeaseWatch::default();
    let mut told = false;
    loop {
        let info = lock_info(session, pipeline, name, run_id, doing);
        let Some(held) = try_take(session, table, &info, &mut watch).await? else { return Ok(Ok(info)) };
        let now = session.cloud.clock.now();
        if !held.is_stale(now) || watch.saw_renewal() {
            return Ok(Err(held));
        }
        if !told {
            let last = held.renewed.unwrap_or(held.acquired);
            session.progress(&format!(
                "the lock of {what} looks abandoned: {} ({}, host {}) last renewed it {}s ago by this machine's clock; watching it for {} before taking it over (clocks may disagree; a renewal meanwhile means it is alive)",
                held.holder,
                held.doing,
                held.host,
                now.since(last).as_secs(),
                crate::model::clock::format_duration(LOCK_LEASE)
            ));
            told = true;
        }
        if session.signals.clone().wait(session.cloud.clock.as_ref(), session.poll).await {
            return Err(Failure::Interrupted { what: format!("interrupted while watching the lock of {what}; nothing was done") }.into());
        }
    }
}

/// Takes the environment's lock for `run_id` or says who holds it.
pub async fn acquire(session: &Session, pipeline: &Pipeline, env: &Environment, run_id: &ReleaseId, doing: &str) -> Result<LockInfo> {
    let held = match take_now(session, pipeline, &env.name, run_id, doing, &env.describe()).await? {
        Ok(info) => return Ok(info),
        Err(held) => held,
    };
    let now = session.cloud.clock.now();
    let mut judged_more = None;
    // A holder that died on this machine: say whether a hook it started still runs, or that unlock may break its
    // lock now (one more read, only on this path).
    if !held.is_stale(now) && (session.holder_gone)(&held) {
        let records = crate::engine::session::recent_records(&session.cloud, pipeline, &env.name).await.unwrap_or_default();
        let judged = judge_holder(session, &held, records.iter().find(|r| r.holder == held.release_id), now);
        let more = match &judged {
            Holder::Gone(why) => format!("{why}: `release unlock --env {}` breaks the lock now", env.name),
            _ => judged.why().to_owned(),
        };
        judged_more = Some(more);
    }
    Err(lock_held(env, &held, now, judged_more))
}

/// The error for a lock held by someone else.
/// `judged`: what more is known of a holder that died on this machine.
pub fn lock_held(env: &Environment, held: &LockInfo, now: Timestamp, judged: Option<String>) -> Error {
    LockHeld::Held {
        env: env.name.to_string(),
        holder: held.holder.clone(),
        since: held.acquired.to_string(),
        release_id: held.release_id.to_string(),
        host: held.host.clone(),
        doing: held.doing.clone(),
        expires: (held.expires >= now).then(|| held.expires.to_string()),
        judged,
    }
    .into()
}

/// What can be said of a lock's holder: the one judgement `unlock`, `status` and rollouts use. Each carries why,
/// for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Its lease ran out: it stopped renewing it.
    Stale(String),
    /// Provably gone: its process on this machine no longer exists and no hook it started may still run
    /// (`holder pid N on HOST is gone`).
    Gone(String),
    /// Alive, or nothing proves otherwise (`lease renewed Ns ago, expires in Ms`).
    Live(String),
}

impl Holder {
    /// Whether the holder may still be working.
    pub fn is_live(&self) -> bool {
        matches!(self, Holder::Live(_))
    }

    /// Why.
    pub fn why(&self) -> &str {
        match self {
            Holder::Stale(w) | Holder::Gone(w) | Holder::Live(w) => w,
        }
    }
}

/// Judges `lock`'s holder at `now`. `record` is the open record of the environment, if any: a holder whose process
/// died while a hook it started still runs is not gone (its hook is still changing things).
pub fn judge_holder(session: &Session, lock: &LockInfo, record: Option<&Record>, now: Timestamp) -> Holder {
    let last = lock.renewed.unwrap_or(lock.acquired);
    if lock.is_stale(now) {
        return Holder::Stale(format!("lease ran out {}s ago (last renewed {}s ago)", now.since(lock.expires).as_secs(), now.since(last).as_secs()));
    }
    let lease = format!("lease renewed {}s ago, expires in {}s", now.since(last).as_secs(), lock.expires.since(now).as_secs());
    if !(session.holder_gone)(lock) {
        return Holder::Live(lease);
    }
    let pid = lock.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
    let hook = record.filter(|r| r.holder == lock.release_id && r.outcome == Outcome::Started).and_then(|r| r.hook_running.as_ref());
    if let Some(why) = hook.and_then(|h| h.may_run(h.host == session.actor.host, |p| session.hooks.alive(p), now)) {
        return Holder::Live(format!("holder pid {pid} on {} is gone but its {why}; {lease}", lock.host));
    }
    Holder::Gone(format!("holder pid {pid} on {} is gone", lock.host))
}

/// What watching a lease found.
enum Watched {
    /// The same lease, unchanged for a whole [`LOCK_LEASE`] on this machine's clock: its holder stopped.
    Lapsed,
    /// Renewed, taken by another run, or released (`None`).
    Changed(Option<LockInfo>),
}

/// Watches the lease `held` of the lock `name` on this machine's clock, reading it every poll, until it changed or
/// stayed the same for a whole [`LOCK_LEASE`]. A signal ends the watch (interrupted, nothing done).
async fn watch_lapse(session: &Session, pipeline: &Pipeline, name: &EnvName, held: &LockInfo, what: &str) -> Result<Watched> {
    let cloud = &session.cloud;
    let mut watch = LeaseWatch::default();
    let mut current = held.clone();
    session.progress(&format!(
        "the lease of {what} ran out by this machine's clock; watching it for {} before breaking it (clocks may disagree; a renewal meanwhile means its holder is alive)",
        crate::model::clock::format_duration(LOCK_LEASE)
    ));
    loop {
        if watch.unchanged_for(&current, cloud.clock.now()) >= LOCK_LEASE {
            return Ok(Watched::Lapsed);
        }
        if watch.saw_renewal() {
            return Ok(Watched::Changed(Some(current)));
        }
        if session.signals.clone().wait(cloud.clock.as_ref(), session.poll).await {
            return Err(Failure::Interrupted { what: format!("interrupted while watching the lock of {what}; nothing was done") }.into());
        }
        match cloud.lock.holder(&pipeline.ledger_table, &pipeline.app, name).await? {
            Some(now_held) => current = now_held,
            None => return Ok(Watched::Changed(None)),
        }
    }
}

/// Renews `lock` for another lease: the renewed lock, or `None` when it is not this run's any more (broken, or
/// lapsed and taken). The one renewal: the runner's watcher and [`crate::engine::runner::Op::guard`] come here, for
/// each lock a run holds.
pub async fn renew(session: &Session, pipeline: &Pipeline, lock: &LockInfo) -> Result<Option<LockInfo>> {
    let next = next_lease(session, lock);
    Ok(session.cloud.lock.renew(&pipeline.ledger_table, &next).await?.then_some(next))
}

/// `lock` renewed now for another lease, as [`renew`] writes it (a guard writing the record with it, too).
pub fn next_lease(session: &Session, lock: &LockInfo) -> LockInfo {
    let now = session.cloud.clock.now();
    LockInfo { renewed: Some(now), expires: now.add(LOCK_LEASE), lease: lock.lease + 1, ..lock.clone() }
}

/// Breaks the lock of a holder judged [`Holder::Gone`] (same host, its process gone), saying so: a write, made only
/// by a command that takes over from it (judging a holder breaks nothing); `what` names what
/// it held (`rollout r…`).
pub async fn break_gone(session: &Session, pipeline: &Pipeline, env: &Environment, lock: &LockInfo, what: &str) -> Result<()> {
    session.progress(&format!(
        "the run holding {what} ({} on {}, pid {}) is gone; breaking its lock",
        lock.holder,
        lock.host,
        lock.pid.map(|p| p.to_string()).unwrap_or_default()
    ));
    session.cloud.lock.break_lock(&pipeline.ledger_table, &pipeline.app, &env.name, &lock.release_id).await?;
    Ok(())
}

/// Leaves a request for the live run holding the lock (`rollout continue`, a rollback during a rollout): a closed
/// record of its own, written once (never over another), which the holder reads at its next poll. The one write a
/// run makes without the lock: the lock is the holder's, and the request is how to reach it.
pub async fn leave_request(session: &Session, pipeline: &Pipeline, record: &Record) -> Result<()> {
    session.cloud.ledger.put_record(&pipeline.ledger_table, record, crate::ports::Expect::New).await?;
    Ok(())
}

/// What `unlock` did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UnlockReport {
    /// The environment.
    pub env: EnvName,
    /// The lock as it was, if held.
    pub was_held_by: Option<LockInfo>,
    /// Whether it was broken.
    pub broken: bool,
    /// How long ago its holder last renewed it, in seconds.
    pub silent_for: Option<f64>,
    /// What was judged of its holder (`holder pid N on HOST is gone`, `lease ran out ...`, or, with --force,
    /// `lease renewed Ns ago, ...`).
    pub holder: Option<String>,
}

/// Breaks the lock of `env` when its holder stopped renewing it (its lease ran out: presumed dead) or is known
/// to be gone (`gone`: e.g. its process no longer exists on this machine); a live lock is refused (exit 5)
/// unless `force`.
pub async fn unlock(session: &Session, pipeline: &Pipeline, env: &Environment, force: bool) -> Result<UnlockReport> {
    let cloud = &session.cloud;
    let table = &pipeline.ledger_table;
    let now = cloud.clock.now();
    let Some(held) = cloud.lock.holder(table, &pipeline.app, &env.name).await? else {
        return Ok(UnlockReport { env: env.name.clone(), was_held_by: None, broken: false, silent_for: None, holder: None });
    };
    let last = held.renewed.unwrap_or(held.acquired);
    let silent = now.since(last).as_secs_f64();
    // The holder's open record only matters when its process is gone: a hook it started may still run.
    let records = if !held.is_stale(now) && (session.holder_gone)(&held) {
        crate::engine::session::recent_records(cloud, pipeline, &env.name).await?
    } else {
        Vec::new()
    };
    let mut judged = crate::engine::lock::judge_holder(&session, &held, records.iter().find(|r| r.holder == held.release_id), now);
    // Run out by this machine's clock only: the holder's clock may be behind, so watch it for a lease first; a
    // holder that died on this machine ran on this clock.
    if let (Holder::Stale(why), false, false) = (&judged, force, (session.holder_gone)(&held)) {
        match watch_lapse(session, pipeline, &env.name, &held, &env.describe()).await? {
            Watched::Lapsed => judged = Holder::Stale(format!("{why}; not renewed in {} of watching", crate::model::clock::format_duration(LOCK_LEASE))),
            Watched::Changed(None) => return Ok(UnlockReport { env: env.name.clone(), was_held_by: None, broken: false, silent_for: None, holder: None }),
            Watched::Changed(Some(_)) => {
                judged = Holder::Live(format!("{why} by this machine's clock, but it was renewed while watched (the clocks disagree)"));
            }
        }
    }
    if judged.is_live() && !force {
        return Err(LockHeld::Alive {
            env: env.name.to_string(),
            holder: held.holder.clone(),
            release_id: held.release_id.to_string(),
            host: held.host.clone(),
            doing: held.doing.clone(),
            held_for: now.since(held.acquired),
            why: judged.why().to_owned(),
        }
        .into());
    }
    let broken = cloud.lock.break_lock(table, &pipeline.app, &env.name, &held.release_id).await?;
    Ok(UnlockReport { env: env.name.clone(), was_held_by: Some(held), broken, silent_for: Some(silent), holder: Some(judged.why().to_owned()) })
}
