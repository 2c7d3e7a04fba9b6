//! A scripted [`HookRunner`] on simulated time: each hook point answers as scripted (exit status after a while,
//! or never), prints scripted lines, and every start and kill is recorded, so that the engine's use of hooks
//! (timeouts, signals, re-runs after a crash) is tested without real processes or real waiting.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use release_core::model::clock::{Clock, Timestamp};
use release_core::model::hook::HookName;
use release_core::ports::{HookCommand, HookExit, HookRunner, ProgressFn, RunningHook};
use release_core::Result;

/// How one hook point answers.
#[derive(Clone, Debug)]
pub struct Script {
    /// Its exit status, or `None`: it never ends by itself.
    pub exit: Option<i32>,
    /// How long it runs (simulated).
    pub takes: Duration,
    /// What it prints when it starts.
    pub lines: Vec<String>,
}

impl Script {
    /// Exits with `code` after `takes`, printing `lines`.
    pub fn exits(code: i32, takes: Duration, lines: &[&str]) -> Self {
        Self { exit: Some(code), takes, lines: lines.iter().map(|l| l.to_string()).collect() }
    }

    /// Never ends by itself.
    pub fn hangs(lines: &[&str]) -> Self {
        Self { exit: None, takes: Duration::ZERO, lines: lines.iter().map(|l| l.to_string()).collect() }
    }
}

/// What the scripted runner saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Every start, in order.
    pub started: Vec<HookCommand>,
    /// Hooks killed, in order.
    pub killed: Vec<HookName>,
}

/// The scripted runner. Hook points without a script exit 0 at once.
#[derive(Clone)]
pub struct ScriptedHooks {
    clock: Arc<dyn Clock>,
    scripts: Arc<Mutex<BTreeMap<HookName, Script>>>,
    /// What it saw.
    pub seen: Arc<Mutex<Seen>>,
}

impl ScriptedHooks {
    /// A runner on `clock` (the in-memory cloud's).
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, scripts: Default::default(), seen: Default::default() }
    }

    /// Scripts a hook point.
    pub fn script(&self, name: HookName, script: Script) -> &Self {
        self.scripts.lock().unwrap().insert(name, script);
        self
    }

    /// The hook points started, in order.
    pub fn started(&self) -> Vec<HookName> {
        self.seen.lock().unwrap().started.iter().map(|c| c.name).collect()
    }
}

#[async_trait]
impl HookRunner for ScriptedHooks {
    async fn start(&self, cmd: &HookCommand, output: Arc<ProgressFn>) -> Result<Box<dyn RunningHook>> {
        let script = self.scripts.lock().unwrap().get(&cmd.name).cloned().unwrap_or(Script { exit: Some(0), takes: Duration::ZERO, lines: Vec::new() });
        self.seen.lock().unwrap().started.push(cmd.clone());
        for l in &script.lines {
            output(l);
        }
        let ends = script.exit.map(|code| (self.clock.now().add(script.takes), code));
        Ok(Box::new(Running { clock: self.clock.clone(), ends, name: cmd.name, seen: self.seen.clone() }))
    }
}

struct Running {
    clock: Arc<dyn Clock>,
    ends: Option<(Timestamp, i32)>,
    name: HookName,
    seen: Arc<Mutex<Seen>>,
}

#[async_trait]
impl RunningHook for Running {
    async fn wait(&mut self) -> Result<HookExit> {
        // Cancel-safe: the end is a point in time, not a duration from this call.
        let Some((at, code)) = self.ends else { return std::future::pending().await };
        let now = self.clock.now();
        if now < at {
            self.clock.sleep(at.since(now)).await;
        }
        Ok(HookExit { code: Some(code), signal: None })
    }

    async fn kill(&mut self) {
        self.ends = None;
        self.seen.lock().unwrap().killed.push(self.name);
    }
}
