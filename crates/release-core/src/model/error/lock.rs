//! Another operator holds the environment's lock, or this run lost it (exit 5).

use std::fmt;

use crate::model::clock::Timestamp;

/// Why the lock is not this run's.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockHeld {
    /// `unlock` without `--force` of a lock whose holder is judged alive.
    Alive {
        /// The environment.
        env: String,
        /// Who holds it.
        holder: String,
        /// The holder's release id.
        release_id: String,
        /// The holder's host.
        host: String,
        /// What the holder is doing, or empty.
        doing: String,
        /// How long it has held the lock.
        held_for: std::time::Duration,
        /// Why it is judged alive (`lease renewed 3s ago`).
        why: String,
    },
    /// A rollout going back found its lock lost before it put the weights back.
    LostBeforeRevert {
        /// The environment.
        env: String,
    },
    /// Someone else holds the lock of `env`.
    Held {
        /// The environment.
        env: String,
        /// Who holds it (`alice@laptop`).
        holder: String,
        /// Since when (RFC 3339).
        since: String,
        /// The holder's release id.
        release_id: String,
        /// The holder's host.
        host: String,
        /// What the holder is doing (`promote 1a2b3c to staging`), or empty.
        doing: String,
        /// When its lease runs out, or None when it already has.
        expires: Option<String>,
        /// What more is known of a holder that died on this machine (its hook still runs; `unlock` breaks it now).
        judged: Option<String>,
    },
    /// The run holding a rollout did not act on a request (`rollout continue`, `rollback`) in time; the request
    /// stays in the ledger.
    RequestIgnored {
        /// The rollout's release id.
        release_id: String,
        /// Who runs it.
        actor: String,
        /// Its host.
        host: String,
        /// How long the request was waited on.
        waited: std::time::Duration,
        /// The environment.
        env: String,
    },
    /// The lock was lost while a hook ran, and the run's check did not say how (a fallback).
    LostDuringHook,
    /// Another run bakes the same commit now (it holds the lock of the commit's bakes).
    Baking {
        /// The commit, short.
        commit: String,
        /// Who bakes it.
        holder: String,
        /// Since when.
        since: Timestamp,
        /// The holder's release id.
        release_id: String,
        /// The holder's host.
        host: String,
        /// When its lease runs out, or None when it already has.
        expires: Option<Timestamp>,
    },
    /// A command waited in the queue as long as `--wait` allows and its turn did not come; its ticket was removed.
    QueueGaveUp {
        /// How long it waited.
        waited: std::time::Duration,
        /// The environment.
        env: String,
        /// How many wait ahead of it, besides the lock's holder.
        ahead: usize,
    },
    /// A command that does not wait found commands waiting in the queue: it does not jump the line.
    Busy {
        /// The environment.
        env: String,
        /// The lock's live holder and what it runs (`promote 1a2b3c to staging`), if any.
        holder: Option<(String, String)>,
        /// How many commands wait.
        waiting: usize,
        /// The first in line and what it would run.
        first: (String, String),
    },
    /// A waiting command's ticket was cancelled (`release queue cancel`): it left the queue.
    TicketCancelled {
        /// What the command would have done.
        doing: String,
        /// The environment.
        env: String,
        /// The ticket.
        ticket: String,
    },
    /// This run's lock was taken by another run.
    Taken {
        /// What it locked (`env staging`).
        what: String,
        /// Who took it.
        holder: String,
        /// The taker's release id.
        release_id: String,
        /// The taker's host.
        host: String,
    },
    /// This run's lock was broken (`release unlock --force`) and nobody holds it.
    Broken {
        /// What it locked (`env staging`).
        what: String,
    },
    /// This run's renewals of its lease kept failing: it stopped a renewal period before the lease it last wrote
    /// runs out on its own clock, so that a run taking the lock over never overlaps it.
    Unrenewed {
        /// What it locked (`env staging`).
        what: String,
        /// How long its lease went unrenewed.
        silent: std::time::Duration,
        /// The last renewal's error.
        error: String,
    },
    /// Another run took over the unfinished record this run was adopting.
    RecordTakenOver {
        /// The record's release id.
        release_id: String,
    },
    /// Another run holds this run's record now.
    RecordHeld {
        /// The record's release id.
        release_id: String,
    },
    /// A hook the dead run of an unfinished record started may still be running: a second copy is not started.
    HookMayRun {
        /// The record's release id.
        release_id: String,
        /// The environment.
        env: String,
        /// Why it may run (`hook before_traffic (…) still runs (process group 4242)`).
        why: String,
        /// The hook's process group, when it runs on this machine (the message says how to stop it).
        pgid: Option<u32>,
    },
}

impl fmt::Display for LockHeld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockHeld::Alive { env, holder, release_id, host, doing, held_for, why } => {
                let doing = if doing.is_empty() { String::new() } else { format!(", {doing}") };
                let age = held_for.as_secs();
                write!(
                    f,
                    "the lock of env {env} is alive: {holder} holds it (release {release_id}, host {host}{doing}) since {}m{:02}s; {why}; it is not broken. \
                     Wait for it, or if you are sure it and its hooks are gone, `release unlock --env {env} --force` (it then stops at its next step)",
                    age / 60,
                    age % 60,
                )
            }
            LockHeld::LostBeforeRevert { env } => write!(f, "lost the lock of env {env}; the weights were not put back"),
            LockHeld::Held { env, holder, since, release_id, host, doing, expires, judged } => {
                let doing = if doing.is_empty() { String::new() } else { format!(", {doing}") };
                let expires = expires.as_deref().unwrap_or("an earlier time (it already has)");
                write!(
                    f,
                    "environment {env} is locked by {holder} since {since} (release {release_id}, host {host}{doing}); wait for it (--wait), or if its holder died, \
                     `release unlock --env {env}` once its lease runs out at {expires}"
                )?;
                if let Some(j) = judged {
                    write!(f, "; its {j}")?;
                }
                Ok(())
            }
            LockHeld::RequestIgnored { release_id, actor, host, waited, env } => write!(
                f,
                "the run holding rollout {release_id} ({actor} on {host}) did not act on the request within {}; the request stays in the ledger and it acts at its next poll; see `release rollout status --env {env}`",
                crate::model::clock::format_duration(*waited)
            ),
            LockHeld::LostDuringHook => f.write_str("the lock was lost"),
            LockHeld::Baking { commit, holder, since, release_id, host, expires } => {
                let expires = expires.map_or_else(|| "an earlier time (it already has)".to_owned(), |t| t.to_string());
                write!(
                    f,
                    "{commit} is being baked by {holder} since {since} (release {release_id}, host {host}); bake again once it ended (the same inputs reuse its AMI), or if it died, once its lease runs out at {expires}"
                )
            }
            LockHeld::QueueGaveUp { waited, env, ahead } => write!(
                f,
                "waited {} in the queue of env {env} and it is still not this command's turn ({ahead} waiting ahead of it, besides the lock's holder); its ticket was removed, nothing was done",
                crate::model::clock::format_duration(*waited)
            ),
            LockHeld::Busy { env, holder, waiting, first } => {
                let running = holder.as_ref().map(|(h, doing)| format!("{h} runs {doing}; ")).unwrap_or_default();
                write!(
                    f,
                    "env {env} is busy: {running}{waiting} command(s) wait in its queue (first: {} {}); queue behind them with --wait, or see `release queue --env {env}`",
                    first.0, first.1
                )
            }
            LockHeld::TicketCancelled { doing, env, ticket } => {
                write!(f, "{doing} left the queue of env {env}: its ticket {ticket} was cancelled (`release queue cancel`); nothing was done")
            }
            LockHeld::Taken { what, holder, release_id, host } => {
                write!(f, "lost the lock of {what}: {holder} took it (release {release_id}, host {host}); stopped")
            }
            LockHeld::Broken { what } => write!(f, "lost the lock of {what}: it was broken (`release unlock --force`); stopped"),
            LockHeld::Unrenewed { what, silent, error } => write!(
                f,
                "lost the lock of {what}: its lease could not be renewed for {} ({error}); stopped before it could run out, so that no other run overlaps this one; run the same command again once AWS answers",
                crate::model::clock::format_duration(*silent)
            ),
            LockHeld::RecordTakenOver { release_id } => write!(f, "release {release_id} was taken over by another run meanwhile; stopped"),
            LockHeld::RecordHeld { release_id } => write!(f, "release {release_id} is held by another run now; stopped"),
            LockHeld::HookMayRun { release_id, env, why, pgid } => {
                let kill = pgid.map(|p| format!(" (or stop it: kill -- -{p})")).unwrap_or_default();
                write!(
                    f,
                    "release {release_id} of env {env} is unfinished and its {why}; a second copy is not started: wait for it to end{kill}, then run the same command again"
                )
            }
        }
    }
}
