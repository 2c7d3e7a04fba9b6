//! Another operator holds the environment's lock, or this run lost it (exit 5).

use std::fmt;

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
        }
    }
}
