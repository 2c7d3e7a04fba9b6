//! What a session learns from the process it runs in: who acts, this host, a run id's random bits, the poll
//! interval, and Ctrl-C / SIGTERM.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::Signals;
use crate::model::clock::{Clock, Timestamp};
use crate::model::ledger::{Actor, LockInfo};
use crate::reexport::adapters::Aws;
use crate::Result;

/// Who is acting: CI's actor variable (`RELEASE_ACTOR`, `GITHUB_ACTOR`, ...), else the git user, else the OS user.
pub fn actor_name() -> String {
    let from_env = ["RELEASE_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILDKITE_BUILD_CREATOR", "CIRCLE_USERNAME", "BUILD_USER_ID"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()));
    match from_env {
        Some(n) => n,
        None => std::process::Command::new("git")
            .args(["config", "user.name"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("LOGNAME").ok())
            .unwrap_or_else(|| "unknown".into()),
    }
}

/// The actor of this process (`name`, or [`actor_name`]); plus the AWS caller identity when `caller` (sessions
/// that write the ledger; read-only ones spare the call).
pub(crate) async fn actor(aws: &Aws, name: Option<String>, caller: bool) -> Result<Actor> {
    let name = name.unwrap_or_else(actor_name);
    let host = hostname();
    let caller = if caller { aws.caller_arn().await? } else { String::new() };
    Ok(Actor { name, caller, host, pid: Some(std::process::id()) })
}

/// This machine's clock as the engine sees it: the system clock, or, for tests only, that clock off by
/// `RELEASE_TEST_CLOCK_OFFSET` seconds (negative: behind), so that two processes can disagree about the time as two
/// machines do.
pub(crate) fn clock(system: Arc<dyn Clock>) -> Arc<dyn Clock> {
    match std::env::var("RELEASE_TEST_CLOCK_OFFSET").ok().and_then(|s| s.trim().parse::<f64>().ok()) {
        Some(secs) if secs != 0.0 => Arc::new(Skewed { system, by_ms: (secs * 1000.0) as i64 }),
        _ => system,
    }
}

/// The system clock, off by a fixed amount (tests only: [`clock`]).
struct Skewed {
    system: Arc<dyn Clock>,
    by_ms: i64,
}

#[async_trait::async_trait]
impl Clock for Skewed {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.system.now().millis() + self.by_ms)
    }

    async fn sleep(&self, d: Duration) {
        self.system.sleep(d).await
    }
}

/// How often waits poll AWS by default: `RELEASE_POLL_SECONDS` (0 < s <= 60; tests and the demo use short ones),
/// else 5 s.
pub fn default_poll() -> Duration {
    std::env::var("RELEASE_POLL_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0 && *s <= 60.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(5))
}

/// Random bits for release ids: two processes started in the same second get different ids.
pub(crate) fn entropy() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

/// Counts Ctrl-C and SIGTERM for the engine. While no operation claims them nothing is half done: with
/// `exit_when_idle` the process then ends at once (exit 130, `interrupted; nothing was changed` on stderr);
/// without it the signal is only counted.
pub(crate) fn signals(exit_when_idle: bool) -> Signals {
    let (tx, rx) = Signals::channel();
    let watched = rx.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else { return };
        loop {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
            if exit_when_idle && !watched.is_claimed() {
                eprintln!("interrupted; nothing was changed");
                std::process::exit(crate::exit::INTERRUPTED);
            }
            tx.signal();
        }
    });
    rx
}

/// This machine's name, as locks, records and hooks name it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Whether the lock's holder is a process of this machine that no longer exists (the engine's
/// `runner::judge_holder` adds the hooks it may have left running).
pub fn holder_gone(lock: &LockInfo) -> bool {
    let here = hostname();
    match lock.pid {
        Some(pid) if here != "unknown" && lock.host == here => !Path::new(&format!("/proc/{pid}")).exists(),
        _ => false,
    }
}
