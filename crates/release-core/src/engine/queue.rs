//! The queue in front of an environment's lock (`--wait`): a fair line of waiting commands, kept in the ledger table
//! beside the lock so that every machine sees the same line.
//!
//! - A waiting command holds a **ticket** (`sk = queue#<arrival>#<id>`), leased like the lock and renewed every
//!   [`TICKET_RENEW_EVERY`] while it waits. A waiter killed with -9 stops renewing it: the waiters behind it skip it
//!   once they saw it unchanged for [`DEAD_TICKET_AFTER`] on their own clocks (three missed renewals), and every
//!   reader once its lease ran out; `release queue` shows it `stale`.
//! - Tickets are served **in order of arrival**: only the first live ticket may take the lock when it frees. A
//!   command that does not wait (`--wait 0`, or none given) does not jump the line either: with tickets waiting it is
//!   refused at once, like a held lock.
//! - `queue = "latest"`: a waiting promote that sees a newer waiting promote behind it leaves the line without
//!   running (`superseded`, recorded in the ledger, exit 0): CI deploying every merge ends on the newest commit.
//!   Each waiter decides this about itself, so no waiter ever writes another's ticket.
//! - `release queue cancel <id>` removes a ticket; its waiter sees it gone, records `cancelled` and exits 5.
//!   Ctrl-C while waiting removes one's own ticket (exit 130). A wait that runs out removes it too (exit 5).

use std::time::Duration;

use crate::model::clock::{format_duration, Timestamp};
use crate::model::error::{Error, Failure, LockHeld, NotFound, Result};
use crate::model::ids::{ClusterName, CommitSha, ReleaseId};
use crate::model::ledger::{Action, LockInfo, Outcome, QueuedDetails, Record, Ticket, TicketAction};
use crate::model::event::{Event, EventKind};
use crate::model::pipeline::{Environment, Pipeline, QueueMode};
use crate::engine::lock::{self, LOCK_LEASE};

/// How often a waiter renews its ticket.
pub const TICKET_RENEW_EVERY: Duration = Duration::from_secs(10);
/// A ticket seen unchanged this long (three renewals missed) is a dead waiter's: skipped by the waiters behind it.
pub const DEAD_TICKET_AFTER: Duration = Duration::from_secs(30);
use crate::engine::session::Session;
use crate::engine::delivery::Delivery;

/// How a command waits for an environment's lock held by someone else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Wait {
    /// Not at all: a held lock (or a non-empty queue) is exit 5 at once.
    #[default]
    No,
    /// In the queue, at most this long.
    For(Duration),
    /// In the queue, as long as it takes.
    Forever,
}

impl Wait {
    /// `--wait` as given: absent -> `No`; `--wait` alone -> `Forever`; `--wait 0` -> `No`; `--wait 10m` -> `For`.
    pub fn from_flag(flag: Option<Option<&str>>) -> std::result::Result<Wait, String> {
        match flag {
            None => Ok(Wait::No),
            Some(None) => Ok(Wait::Forever),
            Some(Some("0")) => Ok(Wait::No),
            Some(Some(text)) => {
                let d = crate::model::clock::parse_duration(text)?;
                Ok(if d.is_zero() { Wait::No } else { Wait::For(d) })
            }
        }
    }
}

/// What a waiting command's ticket says about it.
#[derive(Clone, Debug)]
pub struct TicketSpec {
    /// Its action.
    pub action: TicketAction,
    /// The commit it deploys, if any.
    pub commit: Option<CommitSha>,
    /// The cluster it names, if any.
    pub cluster: Option<ClusterName>,
}

/// One line of `release queue`: the lock holder, or a ticket.
#[derive(Clone, Debug, serde::Serialize)]
pub struct QueueView {
    /// The environment.
    pub env: crate::model::ids::EnvName,
    /// `fifo` or `latest`.
    pub mode: &'static str,
    /// Who holds the lock, if anyone.
    pub holder: Option<LockInfo>,
    /// The tickets in order of arrival, with whether each waiter is alive.
    pub tickets: Vec<TicketView>,
}

/// A ticket as `release queue` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TicketView {
    /// The ticket.
    #[serde(flatten)]
    pub ticket: Ticket,
    /// 1 for the first in line; stale and expired tickets have none.
    pub position: Option<usize>,
    /// Whether its lease ran out (every reader skips it; it stays in the table, skipped, until cancelled).
    pub expired: bool,
    /// Whether it missed its renewals for [`DEAD_TICKET_AFTER`] by this machine's clock: its waiter is presumed
    /// dead (killed with -9), and the waiters behind it skip it.
    pub stale: bool,
}

/// The queue of `env` as it stands.
pub async fn view(session: &Session, pipeline: &Pipeline, env: &Environment) -> Result<QueueView> {
    let cloud = &session.cloud;
    let now = cloud.clock.now();
    let holder = cloud.lock.holder(&pipeline.ledger_table, &pipeline.app, &env.name).await?.filter(|l| !l.is_stale(now));
    let mut position = 0;
    let tickets = cloud
        .queue
        .tickets(&pipeline.ledger_table, &pipeline.app, &env.name)
        .await?
        .into_iter()
        // A started ticket's command holds the lock: it is the holder, not a waiter.
        .filter(|t| t.started.is_none())
        .map(|t| {
            let expired = !t.is_waiting(now);
            let stale = expired || now.since(t.last_renewed()) >= DEAD_TICKET_AFTER;
            let position = (!stale).then(|| {
                position += 1;
                position
            });
            TicketView { ticket: t, position, expired, stale }
        })
        .collect();
    Ok(QueueView { env: env.name.clone(), mode: env.queue.as_str(), holder, tickets })
}

/// Removes the ticket `id` from whichever environment of the pipeline holds it; returns it.
pub async fn cancel(session: &Session, pipeline: &Pipeline, id: &str) -> Result<Ticket> {
    for env in &pipeline.envs {
        let tickets = session.cloud.queue.tickets(&pipeline.ledger_table, &pipeline.app, &env.name).await?;
        if let Some(t) = tickets.into_iter().find(|t| t.id.as_str() == id) {
            if session.cloud.queue.remove_ticket(&pipeline.ledger_table, &t).await? {
                return Ok(t);
            }
        }
    }
    Err(NotFound::Ticket { id: id.to_owned(), app: pipeline.app.to_string() }.into())
}

/// Takes the environment's lock for `run_id`: at once when `wait` is `No` (refusing when it is held or others
/// wait), else through the queue. Returns the lock, how long it waited, and its ticket (marked started; the
/// caller removes it when the command ends).
pub async fn take_turn(
    session: &Session,
    pipeline: &Pipeline,
    env: &Environment,
    run_id: &ReleaseId,
    doing: &str,
    wait: Wait,
    spec: Option<&TicketSpec>,
    events: &Delivery,
) -> Result<(LockInfo, Duration, Option<Ticket>)> {
    let (spec, limit) = match (wait, spec) {
        (Wait::No, _) | (_, None) => return Ok((at_once(session, pipeline, env, run_id, doing).await?, Duration::ZERO, None)),
        (Wait::For(d), Some(s)) => (s, Some(d)),
        (Wait::Forever, Some(s)) => (s, None),
    };
    let cloud = &session.cloud;
    let table = &pipeline.ledger_table;
    let now = cloud.clock.now();
    let mut w = Waiter { session, pipeline, env, run_id, doing, spec, events, ticket: ticket(session, pipeline, env, run_id, doing, spec, now), said: String::new(), said_at: now, lock_watch: Default::default(), seen: Default::default() };
    // Waiting is this command's to stop: Ctrl-C removes the ticket rather than killing the process.
    let _claim = session.signals.claim();
    cloud.queue.enqueue(table, &w.ticket).await?;
    let queued = ticket_record(session, pipeline, env, &w.ticket, spec, Outcome::Started, None);
    events.send(Event::of(EventKind::Queued, &queued, events.link(), now));
    let deadline = limit.map(|d| now.add(d));
    let mut renewed = now;
    let mut signals = session.signals.clone();
    let outcome: Result<LockInfo> = loop {
        let now = cloud.clock.now();
        let ahead = match w.round(now).await? {
            Round::Took(info) => break Ok(info),
            Round::Left(e) => break Err(e),
            Round::Again => continue,
            Round::Wait(ahead) => ahead,
        };
        if deadline.is_some_and(|d| now >= d) {
            let gave_up = format!("gave up after waiting {}", format_duration(limit.unwrap_or_default()));
            record_left(session, pipeline, env, &w.ticket, spec, Outcome::Cancelled, None, gave_up, events).await?;
            break Err(LockHeld::QueueGaveUp { waited: limit.unwrap_or_default(), env: env.name.to_string(), ahead }.into());
        }
        if now.since(renewed) >= TICKET_RENEW_EVERY {
            w.ticket.expires = now.add(LOCK_LEASE);
            w.ticket.renewed = Some(now);
            // Gone means cancelled: the next round says so.
            cloud.queue.update_ticket(table, &w.ticket).await?;
            renewed = now;
        }
        // At least as often as the ticket is renewed, whatever the poll: a waiter seen silent is taken for dead.
        let poll = session.poll.min(TICKET_RENEW_EVERY);
        let nap = deadline.map_or(poll, |d| poll.min(d.since(now).max(Duration::from_millis(1))));
        tokio::select! {
            _ = cloud.clock.sleep(nap) => {}
            _ = signals.changed() => {}
        }
    };
    let ticket = w.ticket;
    match outcome {
        Ok(info) => Ok((info, cloud.clock.now().since(ticket.arrival), Some(ticket))),
        Err(e) => {
            // A failure to remove is only a ticket that expires with its lease.
            let _ = cloud.queue.remove_ticket(table, &ticket).await;
            Err(e)
        }
    }
}

/// A command that does not wait takes the lock at once, and does not jump the line either: with tickets waiting
/// it is refused like a held lock.
async fn at_once(session: &Session, pipeline: &Pipeline, env: &Environment, run_id: &ReleaseId, doing: &str) -> Result<LockInfo> {
    let cloud = &session.cloud;
    let table = &pipeline.ledger_table;
    let now = cloud.clock.now();
    let waiting: Vec<Ticket> = cloud.queue.tickets(table, &pipeline.app, &env.name).await?.into_iter().filter(|t| t.is_waiting(now)).collect();
    if let Some(first) = waiting.first() {
        let holder = cloud.lock.holder(table, &pipeline.app, &env.name).await?.filter(|l| !l.is_stale(now));
        return Err(LockHeld::Busy {
            env: env.name.to_string(),
            holder: holder.map(|h| (h.holder, h.doing)),
            waiting: waiting.len(),
            first: (first.holder.clone(), first.doing.clone()),
        }
        .into());
    }
    lock::acquire(session, pipeline, env, run_id, doing).await
}

/// The ticket of `run_id`, arriving `now`.
fn ticket(session: &Session, pipeline: &Pipeline, env: &Environment, run_id: &ReleaseId, doing: &str, spec: &TicketSpec, now: Timestamp) -> Ticket {
    let a = &session.actor;
    Ticket {
        app: pipeline.app.clone(),
        env: env.name.clone(),
        id: run_id.clone(),
        arrival: now,
        holder: a.name.clone(),
        host: a.host.clone(),
        pid: a.pid,
        action: spec.action,
        commit: spec.commit.clone(),
        doing: doing.to_owned(),
        expires: now.add(LOCK_LEASE),
        renewed: Some(now),
        started: None,
    }
}

/// A command waiting in the queue: its ticket, and the line it last told the operator.
struct Waiter<'a> {
    session: &'a Session,
    pipeline: &'a Pipeline,
    env: &'a Environment,
    run_id: &'a ReleaseId,
    doing: &'a str,
    spec: &'a TicketSpec,
    events: &'a Delivery,
    ticket: Ticket,
    said: String,
    said_at: Timestamp,
    /// The lock's lease as this waiter watched it (taken over once it saw it unchanged for a whole lease).
    lock_watch: lock::LeaseWatch,
    /// The other tickets as this waiter saw them: each as last read, and since when (its clock) unchanged.
    seen: std::collections::BTreeMap<ReleaseId, lock::Unchanged<Ticket>>,
}

impl Waiter<'_> {
    /// Whether `t` is a dead waiter's by what this waiter saw: not renewed for [`DEAD_TICKET_AFTER`] on this
    /// machine's clock (no other clock is compared).
    fn silent(&mut self, t: &Ticket, now: Timestamp) -> bool {
        self.seen.entry(t.id.clone()).or_default().unchanged_for(t, now, Ticket::same_renewal) >= DEAD_TICKET_AFTER
    }
}

/// What one look at the queue decided.
enum Round {
    /// The lock is this command's.
    Took(LockInfo),
    /// It leaves the line without running; its ticket goes on the way out.
    Left(Error),
    /// It took the lock but its ticket was cancelled at the last moment (the lock was given back): look again at once.
    Again,
    /// Not its turn yet, with this many waiting ahead of it.
    Wait(usize),
}

impl Waiter<'_> {
    /// One look at the queue at `now`: leave (interrupted, cancelled, superseded), take the lock when no one is
    /// ahead, or say who is.
    async fn round(&mut self, now: Timestamp) -> Result<Round> {
        let (session, pipeline, env, spec, events) = (self.session, self.pipeline, self.env, self.spec, self.events);
        let cloud = &session.cloud;
        let table = &pipeline.ledger_table;
        let ticket = &self.ticket;
        if session.signals.count() > 0 {
            record_left(session, pipeline, env, ticket, spec, Outcome::Interrupted, None, "interrupted while waiting".to_owned(), events).await?;
            let what = format!("interrupted while waiting in the queue of env {}; its ticket was removed, nothing was done", env.name);
            return Ok(Round::Left(Failure::Interrupted { what }.into()));
        }
        let all = cloud.queue.tickets(table, &pipeline.app, &env.name).await?;
        if !all.iter().any(|t| t.id == ticket.id) {
            record_left(session, pipeline, env, ticket, spec, Outcome::Cancelled, None, "cancelled while waiting (`release queue cancel`)".to_owned(), events).await?;
            return Err(LockHeld::TicketCancelled { doing: ticket.doing.clone(), env: env.name.to_string(), ticket: ticket.id.to_string() }.into());
        }
        let mine = ticket.id.clone();
        let mut waiting: Vec<&Ticket> = Vec::new();
        for t in &all {
            if t.id == mine || (t.is_waiting(now) && !self.silent(t, now)) {
                waiting.push(t);
            }
        }
        let ticket = &self.ticket;
        let newer = |t: &&Ticket| t.action == TicketAction::Promote && (t.arrival > ticket.arrival || (t.arrival == ticket.arrival && t.id > ticket.id));
        // `latest`: a promote yields its turn to any newer waiting promote, and leaves only once a newer one has
        // started (taken the lock), never before: a newer one that gives up or is cancelled leaves it in line.
        let latest = env.queue == QueueMode::Latest && spec.action == TicketAction::Promote;
        if latest {
            if let Some(by) = all.iter().filter(|t| t.started.is_some()).filter(newer).last() {
                return Err(self.superseded(by).await?);
            }
        }
        let yields = latest && waiting.iter().any(newer);
        // Older promotes of a `latest` queue yield to this one: they are not ahead of it.
        let ahead: Vec<&Ticket> = waiting
            .iter()
            .copied()
            .take_while(|t| t.id != ticket.id)
            .filter(|t| !(latest && t.action == TicketAction::Promote))
            .collect();
        if yields {
            let line = format!("queued: yielding to a newer promote of {} (queue = \"latest\"); leaving once it starts", env.name);
            tell(session, &mut self.said, &mut self.said_at, now, line);
        } else if ahead.is_empty() {
            return self.try_lock(now).await;
        } else {
            let holder = cloud.lock.holder(table, &pipeline.app, &env.name).await?.filter(|l| !l.is_stale(now));
            let mut parts: Vec<String> = Vec::new();
            if let Some(h) = &holder {
                parts.push(format!("{} {} (running {})", h.holder, h.doing, since(now, h.acquired)));
            }
            parts.extend(ahead.iter().map(|t| format!("{} {} (waiting)", t.holder, t.doing)));
            let line = format!("queued: {} ahead: {}", parts.len(), parts.join(", "));
            tell(session, &mut self.said, &mut self.said_at, now, line);
        }
        Ok(Round::Wait(ahead.len()))
    }

    /// A newer promote of a `latest` queue started: this one leaves the line, recorded `superseded`. The error
    /// it leaves with.
    async fn superseded(&self, by: &Ticket) -> Result<Error> {
        let (session, pipeline, env, ticket) = (self.session, self.pipeline, self.env, &self.ticket);
        session.cloud.queue.remove_ticket(&pipeline.ledger_table, ticket).await?;
        record_left(session, pipeline, env, ticket, self.spec, Outcome::Superseded, Some(by.id.clone()), format!("superseded by {} while waiting", by.id), self.events).await?;
        let by = format!("superseded by {} ({} by {}): env {} deploys the newest waiting commit (queue = \"latest\"); nothing was done", by.id, by.doing, by.holder, env.name);
        Ok(Failure::Superseded { by }.into())
    }

    /// First in line: takes the lock when it is free, else says who holds it.
    async fn try_lock(&mut self, now: Timestamp) -> Result<Round> {
        let (session, pipeline) = (self.session, self.pipeline);
        let cloud = &session.cloud;
        let table = &pipeline.ledger_table;
        let info = lock::lock_info(session, pipeline, &self.env.name, self.run_id, self.doing);
        match lock::try_take(session, table, &info, &mut self.lock_watch).await? {
            None => {
                // The ticket stays, marked started, until the command ends: older promotes that yielded to it
                // see that it started (and leave); nobody counts it as waiting any more.
                self.ticket.started = Some(now);
                if !cloud.queue.update_ticket(table, &self.ticket).await? {
                    // Cancelled at the last moment: give the lock back and say so.
                    cloud.lock.release(table, &info).await?;
                    return Ok(Round::Again);
                }
                Ok(Round::Took(info))
            }
            Some(held) => {
                let line = format!("queued: first in line; waiting for {} {} (running {})", held.holder, held.doing, since(now, held.acquired));
                tell(session, &mut self.said, &mut self.said_at, now, line);
                Ok(Round::Wait(0))
            }
        }
    }
}

fn since(now: Timestamp, then: Timestamp) -> String {
    format_duration(Duration::from_secs(now.since(then).as_secs()))
}

/// A queue line without its running times, which change every poll: two lines with the same key say the same.
fn line_key(line: &str) -> String {
    let mut parts = line.split(" (running ");
    let mut key = parts.next().unwrap_or("").to_owned();
    for p in parts {
        key.push_str(p.split_once(')').map_or("", |(_, rest)| rest));
    }
    key
}

/// A progress line when the queue changed, else at most once a minute.
fn tell(session: &Session, said: &mut String, said_at: &mut Timestamp, now: Timestamp, line: String) {
    let key = line_key(&line);
    if said.is_empty() || key != *said || now.since(*said_at) >= Duration::from_secs(60) {
        session.progress(&line);
        *said = key;
        *said_at = now;
    }
}

/// Writes the ledger record of a waiter that left the queue without running, and tells the sinks.
#[allow(clippy::too_many_arguments)]
async fn record_left(
    session: &Session,
    pipeline: &Pipeline,
    env: &Environment,
    ticket: &Ticket,
    spec: &TicketSpec,
    outcome: Outcome,
    superseded_by: Option<ReleaseId>,
    detail: String,
    events: &Delivery,
) -> Result<()> {
    let mut record = ticket_record(session, pipeline, env, ticket, spec, outcome, superseded_by);
    record.detail = Some(detail);
    let failures = {
        events.send(Event::of(Event::closing_kind(&record), &record, events.link(), session.cloud.clock.now()));
        events.settle(crate::engine::delivery::SINK_TIMEOUT).await
    };
    record.notify_failures = failures;
    session.cloud.ledger.put_record(&pipeline.ledger_table, &record, crate::ports::Expect::New).await?;
    Ok(())
}

/// The record of a waiting command: `outcome` `Started` while it waits (for the `queued` event), or how it left.
fn ticket_record(
    session: &Session,
    pipeline: &Pipeline,
    env: &Environment,
    ticket: &Ticket,
    spec: &TicketSpec,
    outcome: Outcome,
    superseded_by: Option<ReleaseId>,
) -> Record {
    let now = session.cloud.clock.now();
    let action = Action::Queued(QueuedDetails {
        command: spec.action,
        commit: spec.commit.clone(),
        cluster: spec.cluster.clone(),
        superseded_by,
        waited: now.since(ticket.arrival).as_secs_f64(),
    });
    let mut record = session.record(pipeline, &env.name, ticket.id.clone(), ticket.arrival, action);
    record.finished = outcome.is_final().then_some(now);
    record.outcome = outcome;
    record.seconds.insert("queued".to_owned(), now.since(ticket.arrival).as_secs_f64());
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_differ_by_who_waits_not_by_how_long() {
        let a = line_key("queued: first in line; waiting for a promote x (running 1s)");
        assert_eq!(a, "queued: first in line; waiting for a promote x");
        assert_eq!(a, line_key("queued: first in line; waiting for a promote x (running 2m3s)"));
        let b = line_key("queued: 1 ahead: a promote x (running 3s), b promote y (waiting)");
        assert_eq!(b, "queued: 1 ahead: a promote x, b promote y (waiting)");
        assert_ne!(a, b);
    }
}
