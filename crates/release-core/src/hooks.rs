//! Lifecycle hooks (`[env.NAME.hooks]`): local commands run where `release` runs, at three points of a deploy.
//!
//! - `before_promote`: once, before anything is launched (a database migration, say);
//! - `before_traffic`: the new fleet is up and takes no traffic yet. Blue/green: at the end of a promote into the
//!   idle cluster, whose load balancer then holds only the new fleet (`RELEASE_LB_DNS`; the cluster's previous
//!   release is set aside, running, until the hook passed). In place: once the new
//!   instances run and before they are registered with the environment's load balancer, which still serves only
//!   the previous release (`RELEASE_LB_DNS` is that load balancer; the new ones are `RELEASE_INSTANCE_IDS`);
//! - `after_traffic`: after the switch (blue/green) or the in-place swap; `RELEASE_LIVE_NAME` serves the new release.
//!
//! A hook is started through the [`crate::ports::HookRunner`] port and waited for here, through the clock: its
//! timeout and a Ctrl-C kill it (its whole process group). Its result (status, seconds, output tail) goes into the
//! ledger record before anything else happens, so the record says why a deploy stopped.
//! Where the engine calls them: `promote/apply.rs` (before_promote, before_traffic, in-place after_traffic),
//! `switch.rs` (blue/green after_traffic); what a failure does is decided by the callers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{format_duration, Timestamp};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::InstanceId;
use crate::ledger::PromoteDetails;
use crate::promote::{PromoteOptions, PromotePlan};
use crate::ports::{HookCommand, HookExit};
use crate::runner::Op;

/// Default `hook_timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Lines of a hook's output kept in the ledger record.
pub const TAIL_LINES: usize = 20;
/// Bytes of a hook's output kept in the ledger record (the newest lines win).
pub const TAIL_BYTES: usize = 4096;

/// The three hook points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookName {
    /// Once, before launching.
    BeforePromote,
    /// The new fleet is up, before it takes traffic.
    BeforeTraffic,
    /// After the new fleet took the traffic.
    AfterTraffic,
}

impl HookName {
    /// The key in the pipeline file, and the name in output and the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            HookName::BeforePromote => "before_promote",
            HookName::BeforeTraffic => "before_traffic",
            HookName::AfterTraffic => "after_traffic",
        }
    }
}

impl std::fmt::Display for HookName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[env.NAME.hooks]`. An empty command is no hook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookSettings {
    /// Run once before launching.
    pub before_promote: Option<String>,
    /// Run when the new fleet is up and takes no traffic.
    pub before_traffic: Option<String>,
    /// Run after the new fleet took the traffic.
    pub after_traffic: Option<String>,
    /// How long a hook may run before it is killed (`hook_timeout`).
    #[serde(serialize_with = "crate::clock::ser_duration")]
    pub timeout: Duration,
    /// `rollback_on_hook_failure` as written; see [`HookSettings::rollback_on_failure`] for the default.
    pub rollback_on_failure: Option<bool>,
}

impl Default for HookSettings {
    fn default() -> Self {
        Self { before_promote: None, before_traffic: None, after_traffic: None, timeout: DEFAULT_TIMEOUT, rollback_on_failure: None }
    }
}

impl HookSettings {
    /// The command of a hook point, if one is set.
    pub fn command(&self, name: HookName) -> Option<&str> {
        match name {
            HookName::BeforePromote => self.before_promote.as_deref(),
            HookName::BeforeTraffic => self.before_traffic.as_deref(),
            HookName::AfterTraffic => self.after_traffic.as_deref(),
        }
        .filter(|c| !c.trim().is_empty())
    }

    /// Whether a failing `after_traffic` hook sends the traffic back: as written, else yes for blue/green (one
    /// Route53 change) and no in place (going back there is a whole promote of the previous commit).
    pub fn rollback_on_failure(&self, blue_green: bool) -> bool {
        self.rollback_on_failure.unwrap_or(blue_green)
    }

    /// Whether any hook is set.
    pub fn any(&self) -> bool {
        [HookName::BeforePromote, HookName::BeforeTraffic, HookName::AfterTraffic].iter().any(|n| self.command(*n).is_some())
    }
}

/// How a hook ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookStatus {
    /// Exit status 0.
    Succeeded,
    /// A non-zero exit status, or killed by a signal it did not get from us.
    Failed,
    /// Ran past `hook_timeout`; its process group was killed.
    TimedOut,
    /// Stopped by Ctrl-C/SIGTERM (or a lost lock); its process group was killed.
    Interrupted,
    /// Could not be started.
    Error,
}

impl HookStatus {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            HookStatus::Succeeded => "succeeded",
            HookStatus::Failed => "failed",
            HookStatus::TimedOut => "timed-out",
            HookStatus::Interrupted => "interrupted",
            HookStatus::Error => "error",
        }
    }
}

/// One hook run, as the ledger record keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HookResult {
    /// Which hook point.
    pub name: HookName,
    /// The command as written.
    pub command: String,
    /// How it ended.
    pub status: HookStatus,
    /// Its exit status, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// How long it ran.
    pub seconds: f64,
    /// The last lines of its output (stdout and stderr), at most [`TAIL_LINES`] lines and [`TAIL_BYTES`] bytes.
    #[serde(default)]
    pub output_tail: Vec<String>,
}

impl HookResult {
    /// Whether the hook passed.
    pub fn passed(&self) -> bool {
        self.status == HookStatus::Succeeded
    }

    /// `hook before_traffic (./smoke) failed with exit status 3 after 1.2s: <last line>`.
    pub fn describe(&self) -> String {
        let how = match (self.status, self.exit_code, self.signal) {
            (HookStatus::Succeeded, _, _) => "succeeded".to_owned(),
            (HookStatus::TimedOut, _, _) => "timed out and was killed".to_owned(),
            (HookStatus::Interrupted, _, _) => "was interrupted and killed".to_owned(),
            (HookStatus::Error, _, _) => "could not be started".to_owned(),
            (HookStatus::Failed, Some(c), _) => format!("failed with exit status {c}"),
            (HookStatus::Failed, None, Some(s)) => format!("failed: killed by signal {s}"),
            (HookStatus::Failed, None, None) => "failed".to_owned(),
        };
        let last = self.output_tail.iter().rev().find(|l| !l.trim().is_empty()).map(|l| format!(": {}", one_line(l, 200))).unwrap_or_default();
        format!("hook {} (`{}`) {how} after {:.1}s{last}", self.name, one_line(&self.command, 80), self.seconds)
    }
}

/// A hook's process, as the record keeps it while the hook runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookProcess {
    /// The process `release` started (`sh -c`).
    pub pid: u32,
    /// Its process group, which holds whatever it started.
    pub pgid: u32,
    /// Its start time (clock ticks after boot, `/proc/PID/stat` field 22): a reused pid has another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
}

/// A hook started and not yet known to have ended. It is in the record from right before it starts until its
/// result is saved, so that a re-run after `release` died (kill -9, a lost machine) knows it may still be running
/// and does not start a second copy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HookInFlight {
    /// Which hook point.
    pub name: HookName,
    /// The command as written.
    pub command: String,
    /// The machine it runs on.
    pub host: String,
    /// When it was started.
    pub started: Timestamp,
    /// `started + hook_timeout`: its run kills it by then, if that run still lives.
    pub deadline: Timestamp,
    /// Its process, once started (`None`: the run died between recording it and starting it, or cannot tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<HookProcess>,
}

impl HookInFlight {
    /// `hook before_traffic (`./smoke`, pid 123 on build-1, started 12s ago)`.
    pub fn describe(&self, now: Timestamp) -> String {
        let pid = self.process.as_ref().map(|p| format!("pid {} ", p.pid)).unwrap_or_default();
        format!("hook {} (`{}`, {pid}on {}, started {}s ago)", self.name, one_line(&self.command, 80), self.host, now.since(self.started).as_secs())
    }

    /// Whether it may still be running, and why (`None`: provably not). On this machine the hook runner looks at
    /// the process (its group, and its start time against pid reuse); elsewhere, or when it cannot tell, only the
    /// deadline can say it ended.
    pub fn may_run(&self, session: &crate::runner::Session, now: Timestamp) -> Option<String> {
        let here = self.host == session.actor.host;
        if here {
            if let Some(p) = &self.process {
                match session.hooks.alive(p) {
                    Some(true) => return Some(format!("{} still runs (process group {})", self.describe(now), p.pgid)),
                    Some(false) => return None,
                    None => {}
                }
            }
        }
        (now < self.deadline).then(|| {
            format!(
                "{} may still run until {} (its hook_timeout){}",
                self.describe(now),
                self.deadline,
                if here { "" } else { "; it runs on another machine, which this one cannot look at" }
            )
        })
    }
}

/// Refuses (exit 5) while a hook that `record`'s run started may still be running: a re-run must never start a
/// second copy (two migrations at once). One that provably ended is noted on the record as interrupted (its
/// output and exit status died with its run) and cleared, so that the re-run starts it again.
pub fn take_over_in_flight(session: &crate::runner::Session, record: &mut crate::ledger::Record, now: Timestamp) -> Result<()> {
    let Some(h) = record.hook_running.clone() else { return Ok(()) };
    if let Some(why) = h.may_run(session, now) {
        let kill = h.process.as_ref().filter(|_| h.host == session.actor.host).map(|p| format!(" (or stop it: kill -- -{})", p.pgid)).unwrap_or_default();
        return Err(Error::new(
            ErrorKind::LockHeld,
            format!(
                "release {} of env {} is unfinished and its {why}; a second copy is not started: wait for it to end{kill}, then run the same command again",
                record.release_id, record.env
            ),
        ));
    }
    record.hooks.push(HookResult {
        name: h.name,
        command: h.command,
        status: HookStatus::Interrupted,
        exit_code: None,
        signal: None,
        seconds: h.deadline.min(now).since(h.started).as_secs_f64(),
        output_tail: vec![format!("the run that started it on {} died while it ran; it ended unobserved", h.host)],
    });
    record.hook_running = None;
    Ok(())
}

fn one_line(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars().take(max).collect::<String>() + "…"
    }
}

/// What a hook is told, as `RELEASE_*` variables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HookContext {
    /// RELEASE_APP.
    pub app: String,
    /// RELEASE_ENV.
    pub env: String,
    /// RELEASE_CLUSTER: the cluster being promoted to or switched to.
    pub cluster: String,
    /// RELEASE_COMMIT: the commit being deployed.
    pub commit: String,
    /// RELEASE_PREVIOUS_COMMIT: the commit live before this release (empty when none).
    pub previous_commit: String,
    /// RELEASE_AMI.
    pub ami: String,
    /// RELEASE_ID: the ledger record's release id.
    pub release_id: String,
    /// RELEASE_LB_DNS: the DNS name of the cluster's load balancer.
    pub lb_dns: String,
    /// RELEASE_INSTANCE_IDS: the new fleet, space-separated (empty before launching).
    pub instance_ids: Vec<String>,
    /// RELEASE_LIVE_NAME: the environment's public name (dns record without the final dot; in place: the load
    /// balancer's DNS name).
    pub live_name: String,
}

impl HookContext {
    /// The variables, by name.
    pub fn vars(&self) -> BTreeMap<String, String> {
        [
            ("RELEASE_APP", self.app.clone()),
            ("RELEASE_ENV", self.env.clone()),
            ("RELEASE_CLUSTER", self.cluster.clone()),
            ("RELEASE_COMMIT", self.commit.clone()),
            ("RELEASE_PREVIOUS_COMMIT", self.previous_commit.clone()),
            ("RELEASE_AMI", self.ami.clone()),
            ("RELEASE_ID", self.release_id.clone()),
            ("RELEASE_LB_DNS", self.lb_dns.clone()),
            ("RELEASE_INSTANCE_IDS", self.instance_ids.join(" ")),
            ("RELEASE_LIVE_NAME", self.live_name.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// A hook runner for programs that run no hooks: a pipeline with hooks is refused, never silently skipped.
pub struct NoHooks;

#[async_trait::async_trait]
impl crate::ports::HookRunner for NoHooks {
    async fn start(&self, cmd: &HookCommand, _output: Arc<crate::ports::ProgressFn>) -> Result<Box<dyn crate::ports::RunningHook>> {
        Err(Error::input(format!(
            "env has a {} hook but this program's session runs no hooks; set Session::hooks (the CLI runs them with sh -c)",
            cmd.name
        )))
    }
}

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
    let mut signals = op.session().signals.clone();
    // Signals so far are the runner's to judge: one that stops the run stops it before the hook starts; one it
    // only acknowledged (past the point of no return) lets the hook run. Any signal after this stops the hook.
    let signals_before = signals.count();
    op.check()?;
    // Recorded before it starts, and saved or not started: if this process dies, a re-run must know that a copy
    // may still be running.
    let session = op.session();
    if let Ok(r) = op.record_mut() {
        take_over_in_flight(session, r, started)?;
        r.progress = Some(crate::ledger::Progress { phase: format!("hook-{name}"), waiting_for: Some(format!("hook {name}")), ..Default::default() });
        r.hook_running = Some(HookInFlight { name, command: command.clone(), host: session.actor.host.clone(), started, deadline, process: None });
    }
    op.save().await.map_err(|e| e.context(format!("recording hook {name} before starting it")))?;
    let mut stop: Option<Error> = None;
    let (status, exit_code, signal) = match op.session().hooks.start(&cmd, output).await {
        Err(e) => {
            op.progress(&format!("hook {name}: {}", e.message()));
            sink_line(&tail, e.message());
            (HookStatus::Error, None, None)
        }
        Ok(mut running) => {
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
                    _ = clock.sleep(slice) => {}
                    _ = signals.changed() => {}
                }
                if signals.count() > signals_before {
                    stop = Some(Error::new(ErrorKind::Interrupted, "interrupted"));
                    break None;
                }
                if op.lock_lost() {
                    stop = Some(op.check().err().unwrap_or_else(|| Error::new(ErrorKind::LockHeld, "the lock was lost")));
                    break None;
                }
            };
            match ended {
                Some(Ok(HookExit { code: Some(0), .. })) => (HookStatus::Succeeded, Some(0), None),
                Some(Ok(HookExit { code, signal })) => (HookStatus::Failed, code, signal),
                Some(Err(e)) => {
                    sink_line(&tail, e.message());
                    (HookStatus::Error, None, None)
                }
                None => {
                    running.kill().await;
                    if stop.is_some() { (HookStatus::Interrupted, None, None) } else { (HookStatus::TimedOut, None, None) }
                }
            }
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
    op.lap(&format!("hook-{name}"));
    op.progress(&result.describe());
    if let Ok(r) = op.record_mut() {
        r.hooks.push(result.clone());
        r.progress = None;
        r.hook_running = None;
    }
    // Saved now: whatever follows (a rollback, a crash), the record says how the hook went.
    let _ = op.save().await;
    let step = if result.passed() { format!("hook-{name}") } else { format!("hook-{name}-failed") };
    op.step(&step.replace('_', "-"))?;
    match stop {
        Some(e) => Err(e.context(format!("hook {name}"))),
        None => Ok(Some(result)),
    }
}

fn sink_line(tail: &Arc<Mutex<Tail>>, line: &str) {
    tail.lock().unwrap().push(line);
}

/// The error a failed `before_*` hook is: a deploy that failed (exit 8), naming the hook.
pub fn failed(result: &HookResult) -> Error {
    Error::deploy_failed(result.describe()).with_details(result.output_tail.iter().map(|l| format!("[hook {}] {l}", result.name)).collect())
}

/// Whether the record of an adopted run already has this hook passed (a re-run after a crash does not run it again).
pub fn passed_before(op: &Op<'_>, name: HookName) -> bool {
    op.record().is_some_and(|r| r.hooks.iter().any(|h| h.name == name && h.passed()))
}

/// The load balancer's DNS name of a cluster (one describe), or empty when it cannot be read.
pub async fn lb_dns(op: &Op<'_>, target: &crate::pipeline::LbTarget) -> String {
    match op.cloud().balancer.describe(std::slice::from_ref(target)).await {
        Ok(lbs) => lbs.into_iter().next().map(|l| l.dns_name).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The environment's public name for hooks: the dns record without its final dot, or in place the load balancer's
/// DNS name.
pub fn live_name(env: &crate::pipeline::Environment, lb_dns: &str) -> String {
    match env.dns() {
        Some(d) => d.record.trim_end_matches('.').to_owned(),
        None => lb_dns.to_owned(),
    }
}

// Where the engine calls the hooks. Each is one call at a clear point of promote/apply.rs or switch.rs.

/// The variables of a promote's hooks; `ids` is the new fleet (empty before launching).
async fn promote_context(op: &Op<'_>, plan: &PromotePlan, ids: &[InstanceId]) -> HookContext {
    let lb = lb_dns(op, &plan.target).await;
    // The commit live before this release: in place the cluster's; blue/green the live cluster's, not the idle one's.
    let previous = if plan.in_place { plan.from_commit.clone() } else { live_commit(op).await };
    HookContext {
        app: plan.app.to_string(),
        env: plan.env.to_string(),
        cluster: plan.cluster.to_string(),
        commit: plan.commit.to_string(),
        previous_commit: previous.map(|c| c.to_string()).unwrap_or_default(),
        ami: plan.ami.to_string(),
        release_id: op.record().map(|r| r.release_id.to_string()).unwrap_or_default(),
        live_name: live_name(op.env(), &lb),
        lb_dns: lb,
        instance_ids: ids.iter().map(ToString::to_string).collect(),
    }
}

async fn live_commit(op: &Op<'_>) -> Option<crate::ids::CommitSha> {
    let live = crate::world::live_name(op.cloud(), op.env()).await.ok()??;
    let instances = op.cloud().fleet.app_instances(&op.pipeline().app).await.ok()?;
    crate::switch::previous(op.env(), &live.weights, &instances).map(|l| l.commit)
}

/// `before_promote`, once, before anything is launched: a failure is a failed deploy that changed nothing.
pub async fn before_promote(op: &mut Op<'_>, plan: &PromotePlan, opts: &PromoteOptions) -> Result<()> {
    if opts.skip_hooks || op.env().hooks.command(HookName::BeforePromote).is_none() || passed_before(op, HookName::BeforePromote) {
        return Ok(());
    }
    let ctx = promote_context(op, plan, &[]).await;
    match run(op, HookName::BeforePromote, &ctx).await? {
        Some(r) if !r.passed() => Err(failed(&r)
            .reword(format!("promote of {} to {} stopped: {}; nothing was launched and {} serves what it served before", crate::ids::short_sha(plan.commit.as_str()), plan.cluster, r.describe(), plan.cluster))
            .with_rolled_back(true)),
        _ => Ok(()),
    }
}

/// In place, `before_traffic` once the new instances run and before they join the load balancer (the first
/// round's). A failure is an error of the round, which removes the new instances as for any failure before the
/// point of no return.
pub async fn before_registering(op: &mut Op<'_>, plan: &PromotePlan, opts: &PromoteOptions, ids: &[InstanceId]) -> Result<()> {
    if opts.skip_hooks || !plan.in_place || op.env().hooks.command(HookName::BeforeTraffic).is_none() || passed_before(op, HookName::BeforeTraffic) {
        return Ok(());
    }
    let ctx = promote_context(op, plan, ids).await;
    match run(op, HookName::BeforeTraffic, &ctx).await? {
        Some(r) if !r.passed() => Err(failed(&r)),
        _ => Ok(()),
    }
}

/// After a promote's rounds. Blue/green: `before_traffic` against the idle cluster, whose load balancer now holds
/// only the new fleet; a failure (or a Ctrl-C) removes the new fleet, and traffic never moved (the caller,
/// `promote::apply::swap_idle`, then registers the cluster's previous release again). In place:
/// `after_traffic`, whose failure is a warning on the record (the promote then says whether to roll back).
pub async fn after_deploy(op: &mut Op<'_>, plan: &PromotePlan, opts: &PromoteOptions, d: &mut PromoteDetails) -> Result<()> {
    if opts.skip_hooks {
        return Ok(());
    }
    if plan.in_place {
        if op.env().hooks.command(HookName::AfterTraffic).is_none() || passed_before(op, HookName::AfterTraffic) {
            return Ok(());
        }
        let ctx = promote_context(op, plan, &d.new_instances).await;
        if let Some(r) = run(op, HookName::AfterTraffic, &ctx).await? {
            if !r.passed() {
                warn(op, &r, op.env().hooks.rollback_on_failure(false));
            }
        }
        return Ok(());
    }
    if op.env().hooks.command(HookName::BeforeTraffic).is_none() || passed_before(op, HookName::BeforeTraffic) {
        return Ok(());
    }
    let ctx = promote_context(op, plan, &d.new_instances).await;
    let why = match run(op, HookName::BeforeTraffic, &ctx).await {
        Ok(Some(r)) if !r.passed() => failed(&r),
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::Interrupted => e,
        Err(e) => return Err(e),
    };
    let what = why.message().to_owned();
    let undo = d.new_instances.clone();
    op.progress(&format!("rolling back: removing the {} new instance(s) of {}; traffic was not moved", undo.len(), plan.cluster));
    if let Err(e) = op.cloud().balancer.deregister(&plan.target, &undo).await {
        op.progress(&format!("rolling back: deregistering from {} failed ({e}); terminating the new instances anyway", plan.target));
    }
    match crate::promote::apply::terminate(op, &undo).await {
        Ok(()) => {
            d.new_instances.clear();
            op.back_before_no_return();
            Err(why
                .reword(format!(
                    "promote of {} to {} failed: {what}; the {} new instance(s) were removed, traffic was not moved, and {} takes no traffic",
                    crate::ids::short_sha(plan.commit.as_str()),
                    plan.cluster,
                    undo.len(),
                    plan.cluster
                ))
                .with_rolled_back(true))
        }
        Err(c) => Err(why
            .reword(format!(
                "promote of {} to {} failed: {what}; removing the {} new instance(s) failed ({c}), so they still run in {}, which takes no traffic; run the promote again",
                crate::ids::short_sha(plan.commit.as_str()),
                plan.cluster,
                undo.len(),
                plan.cluster
            ))
            .with_rolled_back(false)),
    }
}

/// Notes a failed `after_traffic` hook on the record, as a warning or as what the rollback that follows is for.
fn warn(op: &mut Op<'_>, r: &HookResult, rolling_back: bool) {
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

/// Whether a promote's record holds a failed `after_traffic` hook that asks for a rollback.
pub fn wants_rollback(env: &crate::pipeline::Environment, hooks: &[HookResult]) -> Option<HookResult> {
    hooks
        .iter()
        .rev()
        .find(|h| h.name == HookName::AfterTraffic)
        .filter(|h| !h.passed() && env.hooks.rollback_on_failure(env.is_blue_green()))
        .cloned()
}

/// The hooks a switch following `plan` runs once its weights are in (`--plan` names them): `after_traffic` when
/// the switch makes `plan.cluster` the only live cluster.
pub fn planned_for_switch(env: &crate::pipeline::Environment, plan: &crate::switch::SwitchPlan) -> Vec<(HookName, String)> {
    let full = plan.to.live() == vec![&plan.cluster] && !plan.to.is_partial();
    match env.hooks.command(HookName::AfterTraffic) {
        Some(c) if full => vec![(HookName::AfterTraffic, c.to_owned())],
        _ => Vec::new(),
    }
}

/// The commit live before the switch being finished: the record's, written when the switch began. A resumed
/// rollout recomputes its plan from weights that already send traffic to the target, so the plan's `previous` can
/// be the target itself; the record is right in every path, the plan only when there is no record.
fn previous_of_switch(op: &Op<'_>, plan: &crate::switch::SwitchPlan) -> String {
    let recorded = op.record().and_then(|r| match &r.action {
        crate::ledger::Action::Switch(d) => Some(d.previous.clone()),
        _ => None,
    });
    recorded.unwrap_or_else(|| plan.previous.clone()).map(|p| p.commit.to_string()).unwrap_or_default()
}

/// Blue/green `after_traffic`, after a switch that made `plan.cluster` the only live cluster. A failure sends the
/// traffic back to the weights from before the switch in one Route53 change (`rollback_on_hook_failure`, the
/// default here) and is a failed deploy recorded `rolled-back`; or it is a warning on the record.
pub async fn after_switch(op: &mut Op<'_>, plan: &crate::switch::SwitchPlan) -> Result<()> {
    if planned_for_switch(op.env(), plan).is_empty() {
        return Ok(());
    }
    let cluster = op.env().cluster(plan.cluster.as_str())?.clone();
    let lb = lb_dns(op, &cluster.target).await;
    let instances = op.cloud().fleet.app_instances(&op.pipeline().app).await.unwrap_or_default();
    let mine = crate::world::cluster_instances(&instances, op.env(), &cluster);
    let ctx = HookContext {
        app: plan.app.to_string(),
        env: plan.env.to_string(),
        cluster: plan.cluster.to_string(),
        commit: plan.commit.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        previous_commit: previous_of_switch(op, plan),
        ami: mine.iter().map(|i| i.ami.clone()).find(|a| !a.is_empty()).unwrap_or_default(),
        release_id: op.record().map(|r| r.release_id.to_string()).unwrap_or_default(),
        live_name: live_name(op.env(), &lb),
        lb_dns: lb,
        instance_ids: mine.iter().filter(|i| i.state == "running").map(|i| i.id.to_string()).collect(),
    };
    let Some(r) = run(op, HookName::AfterTraffic, &ctx).await? else { return Ok(()) };
    if r.passed() {
        return Ok(());
    }
    let rollback = op.env().hooks.rollback_on_failure(true);
    warn(op, &r, rollback);
    if !rollback {
        return Ok(());
    }
    // A fresh look: the records hold the new weights now, and the change is computed against what they hold.
    let live = crate::world::live_name(op.cloud(), op.env()).await?.ok_or_else(|| Error::internal("blue/green without dns"))?;
    let comment = format!("release switch {} back to {} (hook after_traffic failed)", op.pipeline().app, plan.from);
    let err = match crate::switch::change_weights(op, &live, &plan.from, &comment).await {
        Ok(_) => {
            op.back_before_no_return();
            op.set_outcome(crate::ledger::Outcome::RolledBack);
            let msg = format!("{}; traffic went back to {} in one Route53 change", r.describe(), plan.from.describe_shares());
            if let Ok(rec) = op.record_mut() {
                rec.detail = Some(msg.clone());
            }
            failed(&r).reword(msg).with_rolled_back(true)
        }
        Err(e) => failed(&r)
            .reword(format!("{}; switching the traffic back failed ({e}); run `release rollback --env {}`", r.describe(), plan.env))
            .with_rolled_back(false),
    };
    let (release_id, hooks) = op.record().map(|rec| (rec.release_id.to_string(), rec.hooks.clone())).unwrap_or_default();
    Err(err.with_report(serde_json::json!({ "release_id": release_id, "hooks": hooks })))
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

    #[test]
    fn empty_commands_are_no_hooks_and_rollback_defaults_to_blue_green() {
        let s = HookSettings { before_traffic: Some("  ".into()), after_traffic: Some("./smoke".into()), ..Default::default() };
        assert_eq!(s.command(HookName::BeforeTraffic), None);
        assert_eq!(s.command(HookName::AfterTraffic), Some("./smoke"));
        assert!(s.rollback_on_failure(true));
        assert!(!s.rollback_on_failure(false));
        let s = HookSettings { rollback_on_failure: Some(false), ..Default::default() };
        assert!(!s.rollback_on_failure(true));
    }
}
