//! The operation runner: every command that changes AWS runs its *apply* inside [`run`], the way kube-rs wraps a
//! reconcile in `finalizer()`, so that the bookkeeping cannot be skipped:
//!
//! - it takes the environment's lock (refusing at once, or queueing for it), and the locks of the other
//!   environments the command names ([`OpSpec::also_locking`]: gc holds every one), and renews them from a task of
//!   its own, independent of what the body is doing or waiting for; a bake's writes run in [`run_bake`], under the
//!   lock of its commit's bakes instead (`Op<'_, BakeLock>`: what a lock locks is a [`lock::Scope`]);
//! - it owns the ledger record: the body opens it (or adopts an unfinished one), saves it at each step, and the
//!   runner closes it with the outcome; every write is conditional on the record's holder, so a run that lost its
//!   lock can never overwrite the run that took over;
//! - a body may run a next operation in the same run ([`Op::then`]: an in-place promote's rollback after its
//!   `after_traffic` hook failed), under the same locks, with a record of its own that the runner closes;
//! - before each destructive step the body calls [`Op::guard`], which confirms with AWS that the lock is still
//!   this run's; a run that lost it stops, records `lost-lock` naming who took it, and exits 5;
//! - Ctrl-C / SIGTERM: before the point of no return the first signal stops the body at its next check and it puts
//!   the environment back; after it, the first signal is acknowledged and the work finishes, a second stops at once
//!   leaving the record open for a re-run to finish;
//! - every wait goes through the `Op`, on the `Clock` port (simulated in tests), bounded by the body: [`Op::pause`]
//!   (a signal or a lost lock stops it), [`Op::nap`] (they wake it) or [`Op::sleep_through`] (cleaning up, the way
//!   back: nothing cuts it short); no other floor sleeps;
//! - the locks are released on every exit except a simulated crash (`ErrorKind::Crash`), which must look like death.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use crate::model::clock::Timestamp;
use crate::model::error::{Cause, Error, ErrorKind, Failure, Internal, LockHeld, Result};
use crate::model::ids::{short_sha, EnvName, ReleaseId};
use crate::model::ledger::{LockInfo, Outcome, Progress, Record};
use crate::model::pipeline::{Environment, Pipeline};
use crate::ports::{Cloud, Expect, LockWrite};

use crate::engine::lock::{self, Scope, RENEW_EVERY};
use crate::engine::session::Session;
use crate::engine::session::Signals;

/// Who took a lock from a run, found when its renewal or guard failed.
#[derive(Clone, Debug)]
pub struct LostLock {
    /// The name the lost lock is keyed by (the run's own, or an environment's it held besides).
    pub env: EnvName,
    /// What it locked, for messages (`env staging`).
    pub what: String,
    /// The lock as it is now, if anyone holds it.
    pub now_held_by: Option<LockInfo>,
    /// Not taken: its renewals kept failing for this long (the last error), and the run stopped before its lease
    /// could run out.
    pub unrenewed: Option<(Duration, String)>,
}

impl LostLock {
    /// The error a run that lost its lock stops with.
    fn failure(&self) -> LockHeld {
        if let Some((silent, error)) = &self.unrenewed {
            return LockHeld::Unrenewed { what: self.what.clone(), silent: *silent, error: error.clone() };
        }
        match &self.now_held_by {
            Some(l) => LockHeld::Taken { what: self.what.clone(), holder: l.holder.clone(), release_id: l.release_id.to_string(), host: l.host.clone() },
            None => LockHeld::Broken { what: self.what.clone() },
        }
    }

    /// What the record says of it.
    fn message(&self) -> String {
        self.failure().to_string()
    }
}

struct Shared {
    /// The run's own lock: none only for a bake before the app's ledger table exists (nothing holds a lock then).
    lock: Mutex<Option<LockInfo>>,
    /// What the run's own lock locks, for messages ([`Scope::describe`]).
    what: String,
    /// The locks held besides the environment's own ([`OpSpec::also_locking`]), in the order they were taken.
    also: Mutex<Vec<LockInfo>>,
    lost: watch::Sender<Option<LostLock>>,
    /// Set once the body passed its point of no return.
    no_return: Mutex<Option<String>>,
    /// How many signals were answered with a message (each is answered once, by whichever side sees it first).
    announced: Mutex<u32>,
    /// Renewals of the leases on the clock, every [`RENEW_EVERY`] (not a guard's): calls that grow with the time a
    /// run takes, as polls do.
    renewals: std::sync::atomic::AtomicU32,
    doing: String,
}

/// Tells what the `n`th signal does, once.
fn announce<S: Scope>(session: &Session, scope: &S, shared: &Shared, n: u32) {
    {
        let mut done = shared.announced.lock().unwrap();
        if n <= *done {
            return;
        }
        *done = n;
    }
    let no_return = shared.no_return.lock().unwrap().clone();
    let line = match (no_return, n) {
        (None, 1) => format!("interrupted: stopping {} and {} (Ctrl-C again to stop at once)", shared.doing, scope.on_interrupt()),
        (Some(note), 1) => format!("interrupted, but {note}: finishing; Ctrl-C again stops at once (the record stays open and a re-run finishes it)"),
        _ => "stopping at once: the record stays open; run the same command again to finish".to_owned(),
    };
    session.progress(&line);
}

/// What a command tells the runner about itself.
pub struct OpSpec {
    /// For the lock and messages: `promote 3f2a… to prod2`.
    pub doing: String,
    /// Whether it waits in the queue for a held lock (`--wait`).
    pub wait: crate::engine::queue::Wait,
    /// What its ticket says while it waits (commands that cannot wait have none).
    pub ticket: Option<crate::engine::queue::TicketSpec>,
    /// Other environments whose locks it holds too (gc: every environment of the app).
    pub also: Vec<EnvName>,
}

impl OpSpec {
    /// A command that does not wait for a held lock.
    pub fn new(doing: String) -> Self {
        Self { doing, wait: crate::engine::queue::Wait::No, ticket: None, also: Vec::new() }
    }

    /// A command that holds the locks of these environments too: taken once the environment's own is, in name
    /// order, never waiting (a held one, or one with a queue, refuses the command: nobody waits holding a lock,
    /// so two such commands cannot deadlock); renewed with it, released with it.
    pub fn also_locking(mut self, envs: impl IntoIterator<Item = EnvName>) -> Self {
        self.also.extend(envs);
        self.also.sort();
        self.also.dedup();
        self
    }

    /// A command that waits in the queue as `wait` says.
    pub fn waiting(mut self, wait: crate::engine::queue::Wait, ticket: crate::engine::queue::TicketSpec) -> Self {
        self.wait = wait;
        self.ticket = Some(ticket);
        self
    }
}

/// One operation under its lock (an environment's, by default): the body's handle on the record, the lock and
/// time.
pub struct Op<'s, S = Environment> {
    session: &'s Session,
    pipeline: &'s Pipeline,
    scope: &'s S,
    shared: &'s Shared,
    signals: Signals,
    lost_rx: watch::Receiver<Option<LostLock>>,
    run_id: ReleaseId,
    /// The release id of a record this run opens: its run id, or a fresh one for each operation it runs next
    /// ([`Op::then`]).
    record_id: ReleaseId,
    /// The record, once opened or adopted.
    record: Option<Record>,
    /// The record holds changes not yet written ([`Op::report`], [`Op::save_later`]): they go with its next write
    /// or the next guard, or before the run waits.
    unsaved: bool,
    started: Timestamp,
    phase_start: Timestamp,
    /// Set by the body when it ends with another outcome than `succeeded` but without an error (e.g. a rollout
    /// that rolled back is an error; a promote that found nothing to do writes nothing).
    outcome: Option<Outcome>,
    /// How long the command waited in the queue before it got the lock.
    queued: Duration,
    /// Deploy events on their way to the sinks.
    events: crate::engine::delivery::Delivery,
    /// What the command is about (for the event of a failure before its record is opened).
    ticket: Option<crate::engine::queue::TicketSpec>,
    /// Whether it went through the queue, which told the sinks `queued`: it closes with an event even when it
    /// opened no record (nothing to do).
    queued_event: bool,
    /// Break-glass past closed promotion gates, carried by the records this run opens (and so their events).
    gates_overridden: Option<crate::model::ledger::GatesOverridden>,
}

impl<'s> Op<'s> {
    /// The environment's recent records ([`crate::engine::session::recent_records`]).
    pub async fn recent_records(&self) -> Result<Vec<Record>> {
        crate::engine::session::recent_records(self.cloud(), self.pipeline(), &self.env().name).await
    }

    /// The environment.
    pub fn env(&self) -> &'s Environment {
        self.scope
    }
}

impl<'s, S: Scope> Op<'s, S> {
    /// This run's id: the lock token, and the release id of a record it opens.
    pub fn run_id(&self) -> &ReleaseId {
        &self.run_id
    }

    /// The session.
    pub fn session(&self) -> &'s Session {
        self.session
    }

    /// The cloud.
    pub fn cloud(&self) -> &'s Cloud {
        &self.session.cloud
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &'s Pipeline {
        self.pipeline
    }

    /// A progress line.
    pub fn progress(&self, line: &str) {
        self.session.progress(line);
    }

    /// A step boundary: the crash hook (tests), and a `step` event for the sinks that take them.
    pub fn step(&self, at: crate::model::phase::Checkpoint) -> Result<()> {
        self.session.checkpoint(at)?;
        if !matches!(at, crate::model::phase::Checkpoint::Locked | crate::model::phase::Checkpoint::Recorded | crate::model::phase::Checkpoint::Finished) {
            if let Some(r) = &self.record {
                let mut e = crate::model::event::Event::of(crate::model::event::EventKind::Step, r, self.events.link(), self.session.cloud.clock.now());
                e.step = Some(at.to_string());
                self.events.send(e);
            }
        }
        Ok(())
    }

    /// A fresh record for this run, not yet written: the body fills in the action and calls [`Op::open`].
    pub fn draft(&self, action: crate::model::ledger::Action) -> Record {
        let mut record = self.session.record(self.pipeline, self.scope.lock_name(), self.record_id.clone(), self.started, action);
        record.holder = self.run_id.clone();
        record.gates_overridden = self.gates_overridden.clone();
        if !self.queued.is_zero() {
            record.seconds.insert("queued".to_owned(), self.queued.as_secs_f64());
        }
        record
    }

    /// The records this run opens from now on carry `overridden` (`--override-gates`: which gates were closed, why
    /// it went through).
    pub fn override_gates(&mut self, overridden: Option<crate::model::ledger::GatesOverridden>) {
        self.gates_overridden = overridden;
    }

    /// Writes a new record (it must not exist).
    pub async fn open(&mut self, record: Record) -> Result<()> {
        let table = &self.pipeline.ledger_table;
        if !self.cloud().ledger.put_record(table, &record, Expect::New).await? {
            return Err(Internal::Invariant { what: format!("ledger record {} exists already", record.release_id) }.into());
        }
        self.events.send(crate::model::event::Event::of(crate::model::event::EventKind::Started, &record, self.events.link(), self.session.cloud.clock.now()));
        self.record = Some(record);
        Ok(())
    }

    /// Takes over the unfinished record of a run that died: from now on this run is its holder. Fails (lock
    /// lost) when another run took it first, or (exit 5) while a hook the dead run started may still be running.
    pub async fn adopt(&mut self, mut record: Record, detail: String) -> Result<()> {
        crate::engine::runner::take_over_in_flight(self.session, &mut record, self.session.cloud.clock.now())?;
        let previous = record.holder.clone();
        record.holder = self.run_id.clone();
        record.detail = Some(detail);
        let table = &self.pipeline.ledger_table;
        if !self.cloud().ledger.put_record(table, &record, Expect::Holder(previous)).await? {
            return Err(LockHeld::RecordTakenOver { release_id: record.release_id.to_string() }.into());
        }
        self.record = Some(record);
        Ok(())
    }

    /// The record (after open/adopt).
    pub fn record(&self) -> Option<&Record> {
        self.record.as_ref()
    }

    /// The record, to change before the next [`Op::save`].
    pub fn record_mut(&mut self) -> Result<&mut Record> {
        self.record.as_mut().ok_or_else(|| Internal::Invariant { what: "the ledger record was changed before it was opened".to_owned() }.into())
    }

    /// Writes the record (conditional on this run holding it).
    pub async fn save(&mut self) -> Result<()> {
        let Some(record) = &self.record else { return Ok(()) };
        let table = &self.pipeline.ledger_table;
        if !self.session.cloud.ledger.put_record(table, record, Expect::Holder(self.run_id.clone())).await? {
            return Err(LockHeld::RecordHeld { release_id: record.release_id.to_string() }.into());
        }
        self.unsaved = false;
        Ok(())
    }

    /// Puts this progress into the record (one write per poll at most, never one per instance). It is written
    /// before the run next waits ([`Op::pause`], [`Op::nap`]) or with the record's next write, whichever comes
    /// first: what `status` shows while the run waits, without a write of its own for a phase that ends at once
    /// (on the emulator every instance is running and healthy at the first poll).
    pub async fn report(&mut self, mut progress: Progress) -> Result<()> {
        progress.updated = Some(self.session.cloud.clock.now());
        if let Some(r) = &mut self.record {
            if r.progress.as_ref().map(|p| (&p.phase, &p.waiting_for, &p.instances)) == Some((&progress.phase, &progress.waiting_for, &progress.instances)) {
                // Nothing new to tell: no write.
                return Ok(());
            }
            r.progress = Some(progress);
            self.unsaved = true;
        }
        Ok(())
    }

    /// Writes what the record holds unwritten ([`Op::report`], [`Op::save_later`]), if anything: before a wait, or
    /// before a step that needs it durable.
    pub async fn flush(&mut self) -> Result<()> {
        if self.unsaved {
            self.save().await?;
        }
        Ok(())
    }

    /// Ends the phase under way: adds its seconds to the record.
    pub fn lap(&mut self, lap: crate::model::phase::Lap) {
        let now = self.session.cloud.clock.now();
        let secs = now.since(self.phase_start).as_secs_f64();
        self.phase_start = now;
        if let Some(r) = &mut self.record {
            let total = r.seconds.entry(lap.to_string()).or_default();
            *total = crate::model::phase::add_lap(*total, secs);
        }
    }

    /// Marks the point of no return: from here on old capacity goes away (or traffic moved), so a failure must
    /// not undo what was done, and the first Ctrl-C no longer stops the work. `note` says why, for that message.
    pub fn point_of_no_return(&mut self, note: &str) {
        *self.shared.no_return.lock().unwrap() = Some(note.to_owned());
    }

    /// Whether the point of no return was passed.
    pub fn past_no_return(&self) -> bool {
        self.shared.no_return.lock().unwrap().is_some()
    }

    /// Undoes [`Op::point_of_no_return`] once what was done past it has been undone (traffic switched back, the
    /// new fleet removed): a failure then closes the record instead of leaving it for a re-run to finish.
    pub fn back_before_no_return(&mut self) {
        *self.shared.no_return.lock().unwrap() = None;
    }

    /// Makes the run end with this outcome: when it returns `Ok`, and also on an error (which then closes the
    /// record with it instead of leaving it open past the point of no return: a rollout gone back, a promote stopped
    /// by an alarm between batches, a failing hook that put the environment back).
    pub fn set_outcome(&mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }

    /// Errors when the run must stop now: its lock is gone, or a signal asks it to.
    pub fn check(&self) -> Result<()> {
        if let Some(lost) = self.lost_rx.borrow().clone() {
            return Err(Error::from(lost.failure()).with_cause(Cause::ConditionFailed));
        }
        let n = self.signals.count();
        if n > 0 {
            announce(self.session, self.scope, self.shared, n);
        }
        let limit = if self.past_no_return() { 2 } else { 1 };
        if n >= limit {
            return Err(Failure::Interrupted { what: "interrupted".to_owned() }.into());
        }
        Ok(())
    }

    /// Waits `d` through the clock, or less when the run must stop (then errors as [`Op::check`]).
    pub async fn pause(&mut self, d: Duration) -> Result<()> {
        self.flush().await?;
        let clock = self.session.cloud.clock.clone();
        let deadline = clock.now().add(d);
        let mut signals = self.signals.clone();
        let mut lost = self.lost_rx.clone();
        loop {
            self.check()?;
            let now = clock.now();
            if now >= deadline {
                return Ok(());
            }
            // A signal that does not stop the run (the first one past the point of no return) only wakes it.
            tokio::select! {
                _ = clock.sleep(deadline.since(now)) => {}
                _ = signals.changed() => {}
                _ = lost.changed() => {}
            }
        }
    }

    /// Waits at most `d` through the clock, woken early by a signal or a lost lock; never an error: the caller
    /// judges what woke it ([`Op::check`], [`Op::lock_lost`]), as a hook that is waited for does.
    pub async fn nap(&mut self, d: Duration) {
        if let Err(e) = self.flush().await {
            // The next write of the record (or `Op::check` after a lost lock) tells.
            tracing::warn!("writing the progress into the record failed: {e}");
        }
        let clock = self.session.cloud.clock.clone();
        tokio::select! {
            _ = clock.sleep(d) => {}
            _ = self.signals.changed() => {}
            _ = self.lost_rx.changed() => {}
        }
    }

    /// Waits `d` through the clock whatever comes: a wait no signal cuts short (cleaning up, the way back).
    pub async fn sleep_through(&self, d: Duration) {
        self.session.cloud.clock.sleep(d).await;
    }

    /// Confirms with AWS, right before a destructive step, that the lock is still this run's (and extends it).
    /// What the record holds unwritten goes in the same call (one transaction), when the run holds one lock.
    pub async fn guard(&mut self) -> Result<()> {
        self.check()?;
        if let (true, Some(lock), Some(record)) = (self.unsaved, sole_lock(self), &self.record) {
            let next = lock::next_lease(self.session, &lock);
            let table = &self.pipeline.ledger_table;
            // Refused or failed: each write alone below says which (a lost lock, a record taken over).
            if let Ok(true) = self.session.cloud.ledger.put_record_with_lock(table, record, &self.run_id, &next, LockWrite::Renew).await {
                *self.shared.lock.lock().unwrap() = Some(next);
                self.unsaved = false;
                return self.check();
            }
        }
        renew(self.session, self.pipeline, self.shared).await;
        self.check()?;
        self.flush().await
    }

    /// Marks the record as changed: it is written before the run next waits, with its next guard or write, or
    /// when the run closes it, rather than in a call of its own now.
    pub fn save_later(&mut self) {
        self.unsaved = self.record.is_some();
    }

    /// How many times the leases were renewed on the clock so far (every [`RENEW_EVERY`], for each lock held):
    /// calls that grow with how long the run takes, not with what it does.
    pub fn renewals(&self) -> u32 {
        let locks = 1 + self.shared.also.lock().unwrap().len() as u32;
        self.shared.renewals.load(std::sync::atomic::Ordering::Relaxed) * locks
    }

    /// Whether the lock was lost (the body may then only clean up what it owns, after claiming its record).
    pub fn lock_lost(&self) -> bool {
        self.lost_rx.borrow().is_some()
    }

    /// Before undoing its own work after losing the lock: claims the record (outcome `lost-lock`) so that a run
    /// that adopted it meanwhile keeps what it adopted. True when this run still owns the record.
    pub async fn claim_for_cleanup(&mut self) -> Result<bool> {
        if !self.lock_lost() {
            return Ok(true);
        }
        let Some(mut record) = self.record.clone() else { return Ok(true) };
        let lost = self.lost_rx.borrow().clone();
        record.outcome = Outcome::LostLock;
        record.finished = Some(self.session.cloud.clock.now());
        record.detail = lost.map(|l| l.message());
        let table = &self.pipeline.ledger_table;
        let mine = self.session.cloud.ledger.put_record(table, &record, Expect::Holder(self.run_id.clone())).await?;
        if mine {
            self.record = Some(record);
        }
        Ok(mine)
    }

    /// Runs `body` as the next operation of this run, under the same locks, with no window for anyone else: it
    /// opens a record of its own (a fresh release id, held by this run) with events of its own, which is closed
    /// when the body ends as [`run`] closes one (outcome, closing event, failed deliveries noted). Then this run's
    /// record, outcome and point of no return are back as they were, for the body to close as it decides; what the
    /// next operation returned (its error as a command would report it) is the caller's to judge.
    pub async fn then<T>(&mut self, body: impl AsyncFnOnce(&mut Op<'_, S>) -> Result<T>) -> Result<T> {
        let now = self.session.cloud.clock.now();
        // This run's own record keeps no progress unwritten while the next operation runs.
        self.flush().await?;
        let record_id = std::mem::replace(&mut self.record_id, self.session.new_release_id());
        let record = self.record.take();
        let outcome = self.outcome.take();
        let no_return = self.shared.no_return.lock().unwrap().take();
        let (started, phase_start) = (std::mem::replace(&mut self.started, now), std::mem::replace(&mut self.phase_start, now));
        let queued = std::mem::take(&mut self.queued);
        let ticket = self.ticket.take();
        let events = std::mem::replace(&mut self.events, self.session.delivery(self.pipeline));
        let result = body(self).await;
        let result = if matches!(&result, Err(e) if e.kind() == ErrorKind::Crash) {
            result
        } else {
            let (closed, write_err) = close_record(self, &result, false).await;
            notify_closed(self, &result).await;
            conclude(self, result, closed, write_err)
        };
        self.record_id = record_id;
        self.record = record;
        self.unsaved = false;
        self.outcome = outcome;
        *self.shared.no_return.lock().unwrap() = no_return;
        (self.started, self.phase_start, self.queued, self.ticket, self.events) = (started, phase_start, queued, ticket, events);
        result
    }
}

/// Renews the leases now (the environment's lock, then those held besides); marks the run's locks lost when one is
/// not ours any more. A failing call is retried at the next renewal (or guard), but not for ever: once the
/// lease this run last wrote is within one and a half renewal periods of running out on its own clock, the run is
/// stopped as if it had lost the lock, before anyone may take it over (a taker waits a whole lease on its own
/// clock after the last renewal it saw).
async fn renew(session: &Session, pipeline: &Pipeline, shared: &Shared) {
    if shared.lost.borrow().is_some() {
        return;
    }
    let own = shared.lock.lock().unwrap().clone();
    let also: Vec<LockInfo> = shared.also.lock().unwrap().clone();
    let held = own.iter().map(|l| (l, None)).chain(also.iter().enumerate().map(|(i, l)| (l, Some(i))));
    for (current, also_at) in held {
        let what = if also_at.is_some() { format!("env {}", current.env) } else { shared.what.clone() };
        match lock::renew(session, pipeline, current).await {
            Ok(Some(next)) => match also_at {
                None => *shared.lock.lock().unwrap() = Some(next),
                Some(i) => shared.also.lock().unwrap()[i] = next,
            },
            Ok(None) => {
                let now_held_by = session.cloud.lock.holder(&pipeline.ledger_table, &pipeline.app, &current.env).await.ok().flatten();
                shared.lost.send_replace(Some(LostLock { env: current.env.clone(), what, now_held_by, unrenewed: None }));
                return;
            }
            Err(e) => {
                let now = session.cloud.clock.now();
                // `renewed` and `expires` of a lease this run wrote are both its own clock's.
                let last = current.renewed.unwrap_or(current.acquired);
                // Stop at the last renewal that comes before the lease's final renewal period (3 failures of 30 s
                // renewals: 90 s), leaving the body a renewal period to reach its next check.
                if now.add(RENEW_EVERY * 3 / 2) >= current.expires {
                    tracing::warn!("renewing the lock of {what} failed since {}s; stopping before its lease runs out: {e}", now.since(last).as_secs());
                    let unrenewed = Some((Duration::from_secs(now.since(last).as_secs()), e.message().to_owned()));
                    shared.lost.send_replace(Some(LostLock { env: current.env.clone(), what, now_held_by: None, unrenewed }));
                    return;
                }
                tracing::warn!("renewing the lock of {what} failed (retrying): {e}");
            }
        }
    }
}

/// Renews the locks every [`RENEW_EVERY`] and answers signals with what they will do; never returns.
async fn watcher<S: Scope>(session: &Session, pipeline: &Pipeline, scope: &S, shared: &Shared) -> std::convert::Infallible {
    let mut signals = session.signals.clone();
    loop {
        let clock = session.cloud.clock.clone();
        tokio::select! {
            _ = clock.sleep(RENEW_EVERY) => {
                shared.renewals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                renew(session, pipeline, shared).await
            }
            _ = signals.changed() => announce(session, scope, shared, signals.count()),
        }
    }
}

/// Takes the locks of [`OpSpec::also`] after the environment's own, in name order, never waiting; each one taken is
/// kept in `shared` at once, so that the runner releases it whatever happens next.
async fn take_also(session: &Session, pipeline: &Pipeline, own: &EnvName, spec: &OpSpec, run_id: &ReleaseId, shared: &Shared, events: &crate::engine::delivery::Delivery) -> Result<()> {
    for name in spec.also.iter().filter(|n| *n != own) {
        let other = pipeline.env(name.as_str())?;
        let (info, _, _) = crate::engine::queue::take_turn(session, pipeline, other, run_id, &spec.doing, crate::engine::queue::Wait::No, None, events).await?;
        shared.also.lock().unwrap().push(info);
    }
    Ok(())
}

/// Runs `body` under the environment's lock, with the record bookkeeping, signals and renewal described above.
/// The body opens (or adopts) the record; an operation that found nothing to do may return without one.
pub async fn run<T>(
    session: &Session,
    pipeline: &Pipeline,
    env: &Environment,
    spec: OpSpec,
    body: impl AsyncFnOnce(&mut Op<'_>) -> Result<T>,
) -> Result<T> {
    // Taking the lock is a write: a signal now must not kill the process between it and the runner.
    let _claim = session.signals.claim();
    let run_id = session.new_release_id();
    let events = session.delivery(pipeline);
    let (info, queued, ticket) = crate::engine::queue::take_turn(session, pipeline, env, &run_id, &spec.doing, spec.wait, spec.ticket.as_ref(), &events).await?;
    let result = match session.checkpoint(crate::model::phase::Checkpoint::Locked) {
        Ok(()) => run_locked(session, pipeline, env, spec, run_id, (Some(info), queued, ticket.is_some()), events, body).await,
        Err(e) => Err(e),
    };
    // The started ticket goes with the command (a crash leaves it, like the lock: its lease runs out).
    if let Some(t) = ticket.filter(|_| !matches!(&result, Err(e) if e.kind() == ErrorKind::Crash)) {
        let _ = session.cloud.queue.remove_ticket(&pipeline.ledger_table, &t).await;
    }
    result
}

/// Runs a bake's writes (`body`) under the lock of its commit's bakes ([`lock::BakeLock`]), with the signals,
/// pauses, renewal and release of any run; no queue (a bake of the same commit under way refuses it at once) and
/// no record (a bake belongs to no environment; the AMI's tags say what it is). Before the app's ledger table
/// exists the bake has no lock to take ([`lock::acquire_bake`]) and runs without one.
pub async fn run_bake<T>(
    session: &Session,
    pipeline: &Pipeline,
    bakes: &lock::BakeLock,
    spec: OpSpec,
    body: impl AsyncFnOnce(&mut Op<'_, lock::BakeLock>) -> Result<T>,
) -> Result<T> {
    // Taking the lock is a write: a signal now must not kill the process between it and the runner.
    let _claim = session.signals.claim();
    let run_id = session.new_release_id();
    let events = session.delivery(pipeline);
    let info = lock::acquire_bake(session, pipeline, bakes, &run_id, &spec.doing).await?;
    match session.checkpoint(crate::model::phase::Checkpoint::Locked) {
        Ok(()) => run_locked(session, pipeline, bakes, spec, run_id, (info, Duration::ZERO, false), events, body).await,
        Err(e) => Err(e),
    }
}

/// [`run`] with the lock already taken (after `queued` in the queue; `queued_event`: the sinks were told).
#[allow(clippy::too_many_arguments)]
async fn run_locked<T, S: Scope>(
    session: &Session,
    pipeline: &Pipeline,
    scope: &S,
    spec: OpSpec,
    run_id: ReleaseId,
    (info, queued, queued_event): (Option<LockInfo>, Duration, bool),
    events: crate::engine::delivery::Delivery,
    body: impl AsyncFnOnce(&mut Op<'_, S>) -> Result<T>,
) -> Result<T> {
    let _claim = session.signals.claim();
    let (lost_tx, lost_rx) = watch::channel(None);
    let shared = Shared {
        lock: Mutex::new(info),
        what: scope.describe(),
        also: Mutex::new(Vec::new()),
        lost: lost_tx,
        no_return: Mutex::new(None),
        announced: Mutex::new(0),
        renewals: Default::default(),
        doing: spec.doing.clone(),
    };
    let started = session.cloud.clock.now();
    let mut op = Op {
        session,
        pipeline,
        scope,
        shared: &shared,
        signals: session.signals.clone(),
        lost_rx,
        record_id: run_id.clone(),
        run_id,
        record: None,
        unsaved: false,
        started,
        phase_start: started,
        outcome: None,
        queued,
        events,
        ticket: spec.ticket.clone(),
        queued_event,
        gates_overridden: None,
    };
    let result = match take_also(session, pipeline, scope.lock_name(), &spec, &op.run_id, &shared, &op.events).await {
        Ok(()) => {
            let work = body(&mut op);
            let watch = watcher(session, pipeline, scope, &shared);
            tokio::select! {
                r = work => r,
                never = watch => match never {},
            }
        }
        Err(e) => Err(e),
    };
    finish(&mut op, result).await
}

/// Closes the record with the outcome and releases the locks; a simulated crash does neither.
async fn finish<T, S: Scope>(op: &mut Op<'_, S>, result: Result<T>) -> Result<T> {
    if matches!(&result, Err(e) if e.kind() == ErrorKind::Crash) {
        return result;
    }
    let (outcome, mut write_err) = close_record(op, &result, true).await;
    if result.is_ok() {
        // The record is closed (and the lock released with it, or not yet): a crash here must leave a re-run
        // nothing to do.
        op.session.checkpoint(crate::model::phase::Checkpoint::Finished)?;
    }
    tell_unrecorded(op, &result).await;
    notify_closed(op, &result).await;
    release_locks(op, &mut write_err).await;
    conclude(op, result, outcome, write_err)
}

/// The outcome a run's record closes with, from how its body ended.
fn outcome_of<T, S: Scope>(op: &Op<'_, S>, result: &Result<T>) -> Outcome {
    let lost = op.lost_rx.borrow().is_some();
    match result {
        Ok(_) => op.outcome.unwrap_or(Outcome::Succeeded),
        Err(_) if lost => Outcome::LostLock,
        // The body decided how it ends (e.g. a promote stopped by an alarm between batches: `failed`, not open).
        Err(_) if op.outcome.is_some() => op.outcome.unwrap_or(Outcome::Failed),
        // Past the point of no return the record stays open, so that a re-run adopts and finishes it.
        Err(_) if op.past_no_return() => Outcome::Started,
        Err(e) if e.kind() == ErrorKind::Interrupted => Outcome::Interrupted,
        Err(e) if refusal(e) => Outcome::Refused,
        Err(_) => Outcome::Failed,
    }
}

/// The run's one lock, while it is still its own and it holds no other: what a record write may renew or release
/// in the same call.
fn sole_lock<S: Scope>(op: &Op<'_, S>) -> Option<LockInfo> {
    if op.lost_rx.borrow().is_some() || !op.shared.also.lock().unwrap().is_empty() {
        return None;
    }
    op.shared.lock.lock().unwrap().clone()
}

/// Writes the record (if the body opened one) with its outcome, detail and times, and releases the run's lock in
/// the same call when `release` and it holds only its own; the outcome, and the error of that write if it failed.
async fn close_record<T, S: Scope>(op: &mut Op<'_, S>, result: &Result<T>, release: bool) -> (Outcome, Option<Error>) {
    let lock = if release { sole_lock(op) } else { None };
    let outcome = outcome_of(op, result);
    let now = op.cloud().clock.now();
    let lost = op.lost_rx.borrow().clone();
    let past = op.past_no_return();
    let note = op.shared.no_return.lock().unwrap().clone();
    let Some(record) = &mut op.record else { return (outcome, None) };
    if record.outcome == Outcome::LostLock {
        // claim_for_cleanup already closed it.
        return (outcome, None);
    }
    record.outcome = outcome;
    record.progress = None;
    if outcome.is_final() {
        record.finished = Some(now);
    }
    let total = now.since(record.started).as_secs_f64();
    record.seconds.insert("total".into(), total);
    if let Err(e) = result {
        record.detail = Some(match (&lost, e.kind(), note) {
            (Some(l), _, _) => l.message(),
            (None, ErrorKind::Interrupted, Some(note)) => format!(
                "interrupted twice past the point of no return ({note}): stopped at once; the record stays open, run the same command again to finish"
            ),
            _ => e.message().to_owned(),
        });
        // A refusal changed nothing, so nothing was put back.
        record.rolled_back = Some(!past && outcome != Outcome::Refused);
    }
    let table = &op.pipeline.ledger_table;
    op.unsaved = false;
    if let Some(lock) = lock {
        // Refused (the lock or the record is not ours any more) or failed: written alone below, and the lock
        // released alone after, as without this.
        if let Ok(true) = op.session.cloud.ledger.put_record_with_lock(table, record, &op.run_id, &lock, LockWrite::Release).await {
            *op.shared.lock.lock().unwrap() = None;
            return (outcome, None);
        }
    }
    match op.session.cloud.ledger.put_record(table, record, Expect::Holder(op.run_id.clone())).await {
        Ok(_) => (outcome, None),
        Err(e) => (outcome, Some(e)),
    }
}

/// A command that failed before it opened its record (a load balancer deleted by hand, say) still tells the
/// sinks, from a record drafted for the event alone (the ledger has nothing to close); so does one that found
/// nothing to do after the sinks were told it `queued`, which closes `succeeded`.
async fn tell_unrecorded<T, S: Scope>(op: &Op<'_, S>, result: &Result<T>) {
    let (None, Some(t)) = (&op.record, &op.ticket) else { return };
    let (outcome, detail) = match result {
        Ok(_) if !op.queued_event => return,
        Ok(_) => (Outcome::Succeeded, "nothing to do".to_owned()),
        Err(e) if matches!(e.kind(), ErrorKind::Crash | ErrorKind::Superseded) => return,
        Err(e) if e.kind() == ErrorKind::Interrupted => (Outcome::Interrupted, e.message().to_owned()),
        Err(e) if refusal(e) => (Outcome::Refused, e.message().to_owned()),
        Err(e) => (Outcome::Failed, e.message().to_owned()),
    };
    let mut draft = op.draft(crate::model::ledger::Action::Queued(crate::model::ledger::QueuedDetails {
        command: t.action,
        commit: t.commit.clone(),
        cluster: t.cluster.clone(),
        superseded_by: None,
        waited: op.queued.as_secs_f64(),
    }));
    draft.outcome = outcome;
    draft.detail = Some(detail);
    // Nothing was changed before the record would have opened: nothing was put back.
    draft.rolled_back = result.is_err().then_some(false);
    let now = op.cloud().clock.now();
    op.events.send(crate::model::event::Event::of(crate::model::event::Event::closing_kind(&draft), &draft, op.events.link(), now));
    op.events.settle(crate::engine::delivery::SINK_TIMEOUT).await;
}

/// The closing event, then every delivery still in flight, bounded: a sink that hangs costs one timeout. Failed
/// deliveries are noted on the record.
async fn notify_closed<T, S: Scope>(op: &mut Op<'_, S>, result: &Result<T>) {
    let Some(record) = op.record.clone().filter(|r| r.outcome.is_final() || result.is_err()) else { return };
    // Stopped at once past the point of no return, the record open: `interrupted`, not a `failed` that the
    // re-run finishing the same release would contradict; that re-run sends the one terminal event.
    let kind = match result {
        Err(e) if record.outcome == Outcome::Started && e.kind() == ErrorKind::Interrupted => crate::model::event::EventKind::Interrupted,
        _ => crate::model::event::Event::closing_kind(&record),
    };
    let now = op.cloud().clock.now();
    op.events.send(crate::model::event::Event::of(kind, &record, op.events.link(), now));
    let failures = op.events.settle(crate::engine::delivery::SINK_TIMEOUT).await;
    if failures.is_empty() {
        return;
    }
    let mut noted = record;
    noted.notify_failures = failures;
    let lost = op.lost_rx.borrow().is_some();
    if !lost && op.cloud().ledger.put_record(&op.pipeline.ledger_table, &noted, Expect::Holder(op.run_id.clone())).await.unwrap_or(false) {
        op.record = Some(noted);
    }
}

/// Releases every lock still this run's (a lost one is someone else's now); the first failure goes to `write_err`.
async fn release_locks<S: Scope>(op: &Op<'_, S>, write_err: &mut Option<Error>) {
    let lost = op.lost_rx.borrow().clone();
    let held: Vec<LockInfo> = op.shared.lock.lock().unwrap().clone().into_iter().chain(op.shared.also.lock().unwrap().iter().cloned()).collect();
    // A lease that went unrenewed may still be this run's: releasing it (conditional on the run) frees it sooner.
    for info in held.iter().filter(|l| lost.as_ref().is_none_or(|lost| lost.unrenewed.is_some() || lost.env != l.env)) {
        if let Err(e) = op.cloud().lock.release(&op.pipeline.ledger_table, info).await {
            write_err.get_or_insert(e);
        }
    }
}

/// What the command returns: the body's value (or the failure to close its record), or its error, which says
/// that the lock was lost when it was, and whether anything was put back, as the record does.
fn conclude<T, S: Scope>(op: &Op<'_, S>, result: Result<T>, outcome: Outcome, write_err: Option<Error>) -> Result<T> {
    match result {
        Ok(v) => match write_err {
            Some(e) => Err(e.context("closing the ledger record")),
            None => Ok(v),
        },
        Err(e) => {
            let e = match op.lost_rx.borrow().clone() {
                Some(l) if e.kind() != ErrorKind::LockHeld => l.failure().into(),
                _ => e,
            };
            // As on the record: a refusal changed nothing, so nothing was put back.
            let e = if e.rolled_back().is_none() && op.record.is_some() { e.with_rolled_back(!op.past_no_return() && outcome != Outcome::Refused) } else { e };
            Err(e)
        }
    }
}

/// Whether an error stopped a run the way a refusal does, before it changed anything: a safety check said no, or
/// something it needs is missing or was asked for wrongly (an alarm firing, a live target, no AMI). An error that
/// says whether it put something back came after a change.
fn refusal(e: &Error) -> bool {
    // LockHeld here is a check that said no (a dead run's hook still runs); a lost lock is judged before this.
    matches!(e.kind(), ErrorKind::Refused | ErrorKind::NotFound | ErrorKind::Input | ErrorKind::LockHeld) && e.rolled_back().is_none()
}

/// `3f2a1b2c3d4e` for messages.
pub fn short(commit: &crate::model::ids::CommitSha) -> &str {
    short_sha(commit.as_str())
}

/// Refuses (exit 5) while a hook that `record`'s run started may still be running: a re-run must never start a
/// second copy (two migrations at once). One that provably ended is noted on the record as interrupted (its
/// output and exit status died with its run) and cleared, so that the re-run starts it again.
pub fn take_over_in_flight(session: &Session, record: &mut Record, now: Timestamp) -> Result<()> {
    let Some(h) = record.hook_running.clone() else { return Ok(()) };
    if let Some(why) = h.may_run(h.host == session.actor.host, |p| session.hooks.alive(p), now) {
        let pgid = h.process.as_ref().filter(|_| h.host == session.actor.host).map(|p| p.pgid);
        return Err(LockHeld::HookMayRun { release_id: record.release_id.to_string(), env: record.env.to_string(), why, pgid }.into());
    }
    record.hooks.push(crate::model::hook::HookResult {
        name: h.name,
        command: h.command,
        status: crate::model::hook::HookStatus::Interrupted,
        exit_code: None,
        signal: None,
        seconds: h.deadline.min(now).since(h.started).as_secs_f64(),
        output_tail: vec![format!("the run that started it on {} died while it ran; it ended unobserved", h.host)],
    });
    record.hook_running = None;
    Ok(())
}

