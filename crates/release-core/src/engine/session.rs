//! What every engine command gets besides the pipeline: the cloud, who acts, where progress goes, signals, the
//! test-only crash hook, randomness for ids, how often waits poll, where events go and how hooks run.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::model::clock::Timestamp;
use crate::model::error::Result;
use crate::model::ids::{EnvName, ReleaseId};
use crate::model::ledger::{Actor, Outcome, Record, RECENT_RECORDS};
use crate::model::pipeline::Pipeline;
use crate::ports::Cloud;

/// Where progress lines and events go (stderr for the CLI; nowhere, or a buffer, in tests).
pub trait Reporter: Send + Sync {
    /// One line of progress for a person.
    fn progress(&self, line: &str);
}

/// A reporter that drops everything.
pub struct Silent;

impl Reporter for Silent {
    fn progress(&self, _line: &str) {}
}

impl<F: Fn(&str) + Send + Sync> Reporter for F {
    fn progress(&self, line: &str) {
        self(line)
    }
}

/// Ctrl-C / SIGTERM as a count, so that the first and the second signal can mean different things. While an
/// operation runs it *claims* the signals (they are its to handle); outside one, the receiver of signals (the CLI)
/// may simply exit, since nothing is half done.
#[derive(Clone, Debug)]
pub struct Signals(watch::Receiver<u32>, Arc<std::sync::atomic::AtomicUsize>);

/// Held while an operation handles the signals.
pub struct Claim(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The sending side of [`Signals`]: the CLI's signal handler, or a test.
#[derive(Clone, Debug)]
pub struct SignalSender(Arc<watch::Sender<u32>>);

impl Signals {
    /// A pair: give the sender to whatever receives signals.
    pub fn channel() -> (SignalSender, Signals) {
        let (tx, rx) = watch::channel(0);
        (SignalSender(Arc::new(tx)), Signals(rx, Default::default()))
    }

    /// Signals that never come.
    pub fn never() -> Signals {
        let (tx, rx) = watch::channel(0);
        // The receiver keeps working after the sender is gone: `changed` then never resolves.
        std::mem::forget(tx);
        Signals(rx, Default::default())
    }

    /// Marks the signals as handled by an operation until the claim is dropped.
    pub fn claim(&self) -> Claim {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Claim(self.1.clone())
    }

    /// Whether an operation handles the signals now.
    pub fn is_claimed(&self) -> bool {
        self.1.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    /// How many signals arrived so far.
    pub fn count(&self) -> u32 {
        *self.0.borrow()
    }

    /// Waits `d` through `clock`; `true` when a signal came first (the wait is cut short).
    pub async fn wait(mut self, clock: &dyn crate::model::clock::Clock, d: Duration) -> bool {
        tokio::select! {
            _ = clock.sleep(d) => false,
            _ = self.changed() => true,
        }
    }

    pub(crate) async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl SignalSender {
    /// One more signal.
    pub fn signal(&self) {
        self.0.send_modify(|n| *n += 1);
    }
}

/// What every engine command gets besides the cloud and the pipeline: who acts, where progress goes, signals,
/// the test-only crash hook, randomness for ids, and how often waits poll.
#[derive(Clone)]
pub struct Session {
    /// The cloud.
    pub cloud: Cloud,
    /// Who acts.
    pub actor: Actor,
    /// Progress lines.
    pub reporter: Arc<dyn Reporter>,
    /// Ctrl-C / SIGTERM.
    pub signals: Signals,
    /// Called at each step boundary with the step's name; an error of kind `Crash` stops right there, as a crash
    /// would (tests: `RELEASE_TEST_CRASH_AT`).
    pub checkpoint: Arc<dyn Fn(&str) -> Result<()> + Send + Sync>,
    /// Random bits for release ids.
    pub entropy: u32,
    /// How often waits poll AWS.
    pub poll: Duration,
    /// Where deploy events go (the sinks of the pipeline's `[notify]`).
    pub notifier: Arc<dyn crate::ports::Notifier>,
    /// Runs the environment's lifecycle hooks (`[env.NAME.hooks]`); none by default.
    pub hooks: Arc<dyn crate::ports::HookRunner>,
    /// Whether a lock's holder is provably dead (the CLI: same host, its pid gone), the judgement `release unlock`
    /// uses; `rollout continue`/`rollback` then treat its rollout as dead at once instead of waiting on it.
    /// Nobody is judged dead by default.
    pub holder_gone: Arc<dyn Fn(&crate::model::ledger::LockInfo) -> bool + Send + Sync>,
    /// The AMI of a commit found by this session before it took a lock (the CLI accepting a sha git does not
    /// know because it has an AMI): the promote that follows uses it rather than describing the images again.
    seen_ami: Arc<std::sync::Mutex<Option<crate::ports::Image>>>,
}

impl Session {
    /// A session with no signals, no crash hook and silent progress.
    pub fn new(cloud: Cloud, actor: Actor) -> Self {
        Self {
            cloud,
            actor,
            reporter: Arc::new(Silent),
            signals: Signals::never(),
            checkpoint: Arc::new(|_| Ok(())),
            entropy: 0,
            poll: Duration::from_secs(5),
            notifier: Arc::new(crate::ports::NoNotifier),
            hooks: Arc::new(crate::ports::NoHooks),
            holder_gone: Arc::new(|_| false),
            seen_ami: Default::default(),
        }
    }

    /// Keeps the AMI of a commit just found, for the next [`Session::recall_ami`] of that commit.
    pub fn remember_ami(&self, ami: crate::ports::Image) {
        *self.seen_ami.lock().unwrap() = Some(ami);
    }

    /// The AMI of `commit` [`Session::remember_ami`] kept, once: a later read describes the images again. An AMI
    /// never changes once baked; one that gc removed meanwhile is refused by RunInstances before anything launches.
    pub fn recall_ami(&self, commit: &crate::model::ids::CommitSha) -> Option<crate::ports::Image> {
        let mut seen = self.seen_ami.lock().unwrap();
        let found = seen.as_ref().is_some_and(|i| i.tags.get(crate::ports::tags::COMMIT).map(String::as_str) == Some(commit.as_str()));
        if found { seen.take() } else { None }
    }

    /// The delivery of events of one operation on `pipeline`.
    pub fn delivery(&self, pipeline: &Pipeline) -> crate::engine::delivery::Delivery {
        let reporter = self.reporter.clone();
        crate::engine::delivery::Delivery::new(self.notifier.clone(), self.cloud.clock.clone(), pipeline.notify.clone(), Arc::new(move |l: &str| reporter.progress(l)))
    }

    /// A new record of `action` by this session's actor, open (`Started`): the one place every field is filled in,
    /// so that the runner's records, queue tickets' and rollout requests' cannot drift apart.
    pub fn record(&self, pipeline: &Pipeline, env: &EnvName, id: ReleaseId, started: Timestamp, action: crate::model::ledger::Action) -> Record {
        let a = &self.actor;
        Record {
            app: pipeline.app.clone(),
            env: env.clone(),
            release_id: id.clone(),
            holder: id,
            actor: a.name.clone(),
            caller: a.caller.clone(),
            host: a.host.clone(),
            started,
            finished: None,
            outcome: Outcome::Started,
            detail: None,
            forced: false,
            rolled_back: None,
            seconds: Default::default(),
            progress: None,
            notify_failures: Vec::new(),
            hooks: Vec::new(),
            hook_running: None,
            gates_overridden: None,
            action,
        }
    }

    /// A new release id (time-ordered).
    pub fn new_release_id(&self) -> ReleaseId {
        let n = self.entropy.wrapping_add(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed).wrapping_mul(0x9e37_79b9));
        ReleaseId::new(self.cloud.clock.now(), n)
    }

    /// Prints a progress line.
    pub fn progress(&self, line: &str) {
        self.reporter.progress(line);
    }

    /// Runs the crash hook for `step`.
    pub fn checkpoint(&self, at: crate::model::phase::Checkpoint) -> Result<()> {
        (self.checkpoint)(&at.to_string())
    }
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The recent records of `env`, newest first: the one read every judgement about unfinished runs, live history
/// and rollouts is made from ([`RECENT_RECORDS`] of them).
pub async fn recent_records(cloud: &Cloud, pipeline: &Pipeline, env: &crate::model::ids::EnvName) -> Result<Vec<Record>> {
    cloud.ledger.records(&pipeline.ledger_table, &pipeline.app, env, Some(RECENT_RECORDS)).await
}
