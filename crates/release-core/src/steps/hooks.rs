//! Running a lifecycle hook (`[env.NAME.hooks]`): a local command started through the [`crate::ports::HookRunner`]
//! port and waited for here, through the clock: its timeout and a Ctrl-C kill it (its whole process group). Its
//! result (status, seconds, output tail) goes into the ledger record before anything else happens, so the record
//! says why a deploy stopped. Where a deploy calls them, and what a failure means, is its op's
//! (`ops::promote::hooks`, `ops::switch::hooks`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::engine::runner::Op;
use crate::model::clock::{format_duration, Timestamp};
use std::time::Duration;

use crate::engine::runner::take_over_in_flight;
use crate::model::error::{Error, Failure, LockHeld, Result};
use crate::model::hook::*;
use crate::ports::{HookCommand, HookExit, RunningHook};
use crate::engine::session::Signals;

/// The newest lines of a hook's output, bounded in lines and bytes.
#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
}

impl Tail {
    fn push(&mut self, line: &str) {
        let line: String = if line.len() > TAIL_BYTES { line.chars().take(TAIL_BYTES / 4).collect::<String>() + "…" } else { line.to_owned() };
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.lines.len() > TAIL_LINES || self.bytes > TAIL_BYTES {
            match self.lines.pop_front() {
                Some(l) => self.bytes -= l.len(),
                None => break,
            }
        }
    }
}

/// Runs hook `name` if the environment sets it (`None` otherwise): starts it, streams its output as progress
/// lines (`[hook before_traffic] ...`), waits at most `hook_timeout` through the clock, kills its process group on
/// timeout, on a signal or when the lock is lost, and writes the result into the record (saved at once). A signal
/// or a lost lock is an error after that (the caller rolls back as for any interruption); a failing hook is not:
/// the caller decides what it means.
pub async fn run(op: &mut Op<'_>, name: HookName, ctx: &HookContext) -> Result<Option<HookResult>> {
    let settings = op.env().hooks.clone();
    let Some(command) = settings.command(name).map(str::to_owned) else { return Ok(None) };
    let cmd = HookCommand { name, command: command.clone(), dir: op.pipeline().root.clone(), vars: ctx.vars() };
    let tail = Arc::new(Mutex::new(Tail::default()));
    let reporter = op.session().reporter.clone();
    let sink = tail.clone();
    let output: Arc<crate::ports::ProgressFn> = Arc::new(move |line: &str| {
        reporter.progress(&format!("[hook {name}] {line}"));
        sink.lock().unwrap().push(line);
    });
    op.progress(&format!("hook {name}: {command} (timeout {})", format_duration(settings.timeout)));
    let clock = op.cloud().clock.clone();
    let started = clock.now();
    let deadline = started.add(settings.timeout);
    let signals = op.session().signals.clone();
    // Signals so far are the runner's to judge: one that stops the run stops it before the hook starts; one it
    // only acknowledged (past the point of no return) lets the hook run. Any signal after this stops the hook.
    let signals_before = signals.count();
    op.check()?;
    record_start(op, name, &command, started, deadline).await?;
    let mut stop: Option<Error> = None;
    let (status, exit_code, signal) = match op.session().hooks.start(&cmd, output).await {
        Err(e) => {
            op.progress(&format!("hook {name}: {}", e.message()));
            sink_line(&tail, e.message());
            (HookStatus::Error, None, None)
        }
        Ok(mut running) => {
            let (ended, why) = wait_for(op, &mut running, name, deadline, (&signals, signals_before), &tail).await?;
            stop = why;
            ended
        }
    };
    let result = HookResult {
        name,
        command,
        status,
        exit_code,
        signal,
        seconds: clock.now().since(started).as_secs_f64(),
        output_tail: tail.lock().unwrap().lines.iter().cloned().collect(),
    };
    record_result(op, &result).await?;
    match stop {
        Some(e) => Err(e.context(format!("hook {name}"))),
        None => Ok(Some(result)),
    }
}

/// Records the hook before it starts, and saves it or does not start it: if this process dies, a re-run must know
/// that a copy may still be running.
async fn record_start(op: &mut Op<'_>, name: HookName, command: &str, started: Timestamp, deadline: Timestamp) -> Result<()> {
    let session = op.session();
    if let Ok(r) = op.record_mut() {
        take_over_in_flight(session, r, started)?;
        r.progress = Some(crate::model::ledger::Progress { phase: crate::model::phase::Phase::Hook(name), waiting_for: Some(format!("hook {name}")), ..Default::default() });
        r.hook_running = Some(HookInFlight { name, command: command.to_owned(), host: session.actor.host.clone(), started, deadline, process: None });
    }
    op.save().await.map_err(|e| e.context(format!("recording hook {name} before starting it")))
}

/// Waits for a started hook until it ends, its deadline passes, a new signal comes (beyond `signals_before`) or
/// the lock is lost, killing it in the last three cases: its status, exit code and signal, and what stopped it.
async fn wait_for(
    op: &mut Op<'_>,
    running: &mut Box<dyn RunningHook>,
    name: HookName,
    deadline: Timestamp,
    (signals, signals_before): (&Signals, u32),
    tail: &Arc<Mutex<Tail>>,
) -> Result<((HookStatus, Option<i32>, Option<i32>), Option<Error>)> {
    let clock = op.cloud().clock.clone();
    let mut stop: Option<Error> = None;
    // Its pid, before waiting on it: what a re-run on this machine checks.
    if let Some(p) = running.process() {
        if let Some(h) = op.record_mut().ok().and_then(|r| r.hook_running.as_mut()) {
            h.process = Some(p);
        }
        if let Err(e) = op.save().await {
            running.kill().await;
            if let Ok(r) = op.record_mut() {
                r.hook_running = None;
            }
            return Err(e.context(format!("recording hook {name}'s process; it was killed")));
        }
    }
    let ended = loop {
        let now = clock.now();
        if now >= deadline {
            break None;
        }
        // Woken by the hook's end, its deadline, a signal, or each poll to notice a lost lock.
        let slice = deadline.since(now).min(op.session().poll.max(Duration::from_millis(100)));
        tokio::select! {
            r = running.wait() => break Some(r),
            _ = op.nap(slice) => {}
        }
        if signals.count() > signals_before {
            stop = Some(Failure::Interrupted { what: "interrupted".into() }.into());
            break None;
        }
        if op.lock_lost() {
            stop = Some(op.check().err().unwrap_or_else(|| LockHeld::LostDuringHook.into()));
            break None;
        }
    };
    let how = match ended {
        Some(Ok(HookExit { code: Some(0), .. })) => (HookStatus::Succeeded, Some(0), None),
        Some(Ok(HookExit { code, signal })) => (HookStatus::Failed, code, signal),
        Some(Err(e)) => {
            sink_line(tail, e.message());
            (HookStatus::Error, None, None)
        }
        None => {
            running.kill().await;
            if stop.is_some() { (HookStatus::Interrupted, None, None) } else { (HookStatus::TimedOut, None, None) }
        }
    };
    Ok((how, stop))
}

/// Puts the hook's result on the record and saves it at once: whatever follows (a rollback, a crash), the record
/// says how the hook went.
async fn record_result(op: &mut Op<'_>, result: &HookResult) -> Result<()> {
    let name = result.name;
    op.lap(crate::model::phase::Lap::Hook(name));
    op.progress(&result.describe());
    if let Ok(r) = op.record_mut() {
        r.hooks.push(result.clone());
        r.progress = None;
        r.hook_running = None;
    }
    let _ = op.save().await;
    op.step(crate::model::phase::Checkpoint::Hook { hook: name, passed: result.passed() })
}

fn sink_line(tail: &Arc<Mutex<Tail>>, line: &str) {
    tail.lock().unwrap().push(line);
}

/// Whether the record of an adopted run already has this hook passed (a re-run after a crash does not run it again).
pub fn passed_before(op: &Op<'_>, name: HookName) -> bool {
    op.record().is_some_and(|r| r.hooks.iter().any(|h| h.name == name && h.passed()))
}

/// Notes a failed `after_traffic` hook on the record, as a warning or as what the rollback that follows is for.
pub fn warn(op: &mut Op<'_>, r: &HookResult, rolling_back: bool) {
    let (line, note) = if rolling_back {
        ("rolling back (rollback_on_hook_failure = true)".to_owned(), format!("{}; rolling back (rollback_on_hook_failure = true)", r.describe()))
    } else {
        let note = format!("warning: {}; the new release stays live (rollback_on_hook_failure = false)", r.describe());
        (note.clone(), note)
    };
    op.progress(&line);
    if let Ok(rec) = op.record_mut() {
        rec.detail = Some(note);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_newest_lines_within_both_bounds() {
        let mut t = Tail::default();
        for i in 0..100 {
            t.push(&format!("line {i}"));
        }
        assert_eq!(t.lines.len(), TAIL_LINES);
        assert_eq!(t.lines.back().map(String::as_str), Some("line 99"));
        let mut t = Tail::default();
        for _ in 0..10 {
            t.push(&"x".repeat(1000));
        }
        assert!(t.bytes <= TAIL_BYTES && t.lines.len() == 4, "{} lines, {} bytes", t.lines.len(), t.bytes);
    }
}
