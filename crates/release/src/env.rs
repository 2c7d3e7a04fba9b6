//! [`Env`]: the handle on one environment of an [`App`]; every method delegates to the engine's [`Release`](crate::Release).

use crate::app::AsCommit;
use crate::engine::queue::{QueueView, Wait};
use crate::model::error::{Aws, Internal};
use crate::model::hook::HookName;
use crate::model::ids::EnvName;
use crate::model::ledger::{Outcome, Record};
use crate::model::pipeline::Environment;
use crate::ops::promote::plan::PlanKind;
use crate::ops::promote::{PromoteOptions, PromotePlan, PromoteReport};
use crate::ops::provision;
use crate::ops::rollback::{RollbackPlan, RollbackReport};
use crate::ops::rollout::{RequestReport, RolloutStatus};
use crate::ops::status::EnvStatus;
use crate::ops::switch::{SwitchOptions, SwitchPlan, SwitchReport};
use crate::{App, Error, Result, UnlockReport};

/// The action of the test event of [`Env::test_sinks`]: no real action has this name, so receivers can tell it
/// apart.
pub const TEST_ACTION: &str = "notify-test";

/// How one sink took the test event of [`Env::test_sinks`].
pub struct SinkTrial {
    /// The sink, as the pipeline defines it.
    pub sink: crate::model::pipeline::Sink,
    /// Whether it took the event (one attempt, within [`SINK_TIMEOUT`](crate::model::event::SINK_TIMEOUT)).
    pub result: Result<()>,
    /// How long the attempt took.
    pub took: std::time::Duration,
}

/// One environment of an [`App`] ([`App::env`]). Operations that change AWS take the environment's lock, run
/// inside the engine's operation runner and write the ledger, exactly as the `release` command's do; each has a
/// `plan_*` twin that writes nothing.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    app: &'a App,
    env: &'a Environment,
}

impl<'a> Env<'a> {
    pub(crate) fn new(app: &'a App, env: &'a Environment) -> Self {
        Self { app, env }
    }

    /// Its name.
    pub fn name(&self) -> &EnvName {
        &self.env.name
    }

    /// Its definition in the pipeline (clusters, DNS, hooks, rollout).
    pub fn environment(&self) -> &'a Environment {
        self.env
    }

    fn opts(&self, opts: &PromoteOptions) -> PromoteOptions {
        let mut opts = opts.clone();
        if opts.region.is_empty() {
            opts.region = self.app.region().to_owned();
        }
        opts
    }

    /// What [`Env::promote`] would do; writes nothing.
    pub async fn plan_promote(&self, commit: impl AsCommit) -> Result<PromotePlan> {
        self.plan_promote_with(commit, &PromoteOptions::default()).await
    }

    /// What [`Env::promote_with`] would do; writes nothing.
    pub async fn plan_promote_with(&self, commit: impl AsCommit, opts: &PromoteOptions) -> Result<PromotePlan> {
        self.app.release().plan_promote(self.env.name.as_str(), &commit.as_commit()?, &self.opts(opts)).await
    }

    /// Promotes the baked `commit` (a full sha): in place on the environment's only cluster, or (blue/green) to
    /// the idle cluster, which then takes no traffic until [`Env::switch_to`].
    pub async fn promote(&self, commit: impl AsCommit) -> Result<PromoteReport> {
        self.promote_with(commit, &PromoteOptions::default(), None).await
    }

    /// [`Env::promote`] with options (`cluster`, `batch`, `force`, `wait`, ...; an empty `region` is the app's).
    /// `confirmed`: a plan shown to someone; the promote is refused when the plan made under the lock goes to
    /// another cluster.
    pub async fn promote_with(&self, commit: impl AsCommit, opts: &PromoteOptions, confirmed: Option<&PromotePlan>) -> Result<PromoteReport> {
        self.app.release().promote(self.env.name.as_str(), &commit.as_commit()?, &self.opts(opts), confirmed).await
    }

    /// The report of a promote that only planned (`release promote --plan`): outcome `planned`, what it would
    /// retire.
    pub fn planned_report(&self, plan: &PromotePlan) -> PromoteReport {
        let mut report = crate::ops::promote::apply::report(plan, crate::ops::promote::PromoteOutcome::Planned);
        report.retired_instances = plan.fleet().map(|f| f.retire.clone()).unwrap_or_default();
        report
    }

    /// The hooks a promote following `plan` would run, in order, with their commands.
    pub fn promote_hooks(&self, plan: &PromotePlan) -> Vec<(HookName, String)> {
        crate::model::pipeline::hooks::planned_for_promote(self.env, plan.kind() == PlanKind::Deploy)
    }

    fn own_cluster(&self, cluster: &str) -> Result<()> {
        self.env.cluster(cluster).map(|_| ())
    }

    /// What [`Env::switch_with`] would do; writes nothing.
    pub async fn plan_switch(&self, cluster: impl AsRef<str>, opts: &SwitchOptions) -> Result<SwitchPlan> {
        self.own_cluster(cluster.as_ref())?;
        self.app.release().plan_switch(cluster.as_ref(), opts).await
    }

    /// Sends all of the environment's live traffic to `cluster` in one Route53 change, once it is fully healthy.
    pub async fn switch_to(&self, cluster: impl AsRef<str>) -> Result<SwitchReport> {
        self.switch_with(cluster, &SwitchOptions::default(), None).await
    }

    /// [`Env::switch_to`] with options: a `weight`, rollout `steps` and `pause`, `force`, `wait`. `confirmed`: a
    /// plan shown to someone; the switch is refused when the plan made under the lock differs.
    pub async fn switch_with(&self, cluster: impl AsRef<str>, opts: &SwitchOptions, confirmed: Option<&SwitchPlan>) -> Result<SwitchReport> {
        self.own_cluster(cluster.as_ref())?;
        self.app.release().switch(cluster.as_ref(), opts, confirmed).await
    }

    /// The hooks a switch following `plan` would run once its weights are in, with their commands (none when it
    /// changes nothing).
    pub fn switch_hooks(&self, plan: &SwitchPlan) -> Vec<(HookName, String)> {
        if !plan.changes {
            return Vec::new();
        }
        crate::model::pipeline::hooks::planned_for_switch(self.env, &plan.cluster, &plan.to)
    }

    /// What [`Env::rollback`] would do; writes nothing.
    pub async fn plan_rollback(&self) -> Result<RollbackPlan> {
        self.plan_rollback_with(&PromoteOptions::default()).await
    }

    /// What [`Env::rollback_with`] would do; writes nothing.
    pub async fn plan_rollback_with(&self, opts: &PromoteOptions) -> Result<RollbackPlan> {
        self.app.release().plan_rollback(self.env.name.as_str(), &self.opts(opts)).await
    }

    /// One step back through what was live: the release live before the current one (skipping releases already
    /// rolled away from); during a partial shift, the weights from before it. Never held by a gate, only by the
    /// lock.
    pub async fn rollback(&self) -> Result<RollbackReport> {
        self.rollback_with(&PromoteOptions::default(), None).await
    }

    /// [`Env::rollback`] with the options of the promote it may run (`force`, `wait`); `confirmed` as for
    /// [`Env::promote_with`].
    pub async fn rollback_with(&self, opts: &PromoteOptions, confirmed: Option<&RollbackPlan>) -> Result<RollbackReport> {
        self.app.release().rollback(self.env.name.as_str(), &self.opts(opts), confirmed).await
    }

    /// What [`Env::provision`] would create; writes nothing.
    pub async fn plan_provision(&self) -> Result<provision::Plan> {
        self.app.release().plan_provision(self.env.name.as_str()).await
    }

    /// Creates what the environment needs (load balancers, security groups, DNS records, the ledger table),
    /// idempotently, under its lock.
    pub async fn provision(&self) -> Result<provision::Plan> {
        self.app.release().provision(self.env.name.as_str()).await
    }

    /// Where the environment stands: each cluster's role, share, commit and health; the lock, the queue, the
    /// operation running and the last record. [`EnvStatus::problem`] says what `release status` would exit for.
    pub async fn status(&self) -> Result<EnvStatus> {
        let mut all = self.app.release().status(Some(self.env.name.as_str())).await?;
        if all.is_empty() {
            return Err(Internal::Invariant { what: format!("no status for env {}", self.env.name) }.into());
        }
        Ok(all.remove(0))
    }

    /// The ledger's records of this environment, newest first, at most `limit` (at least 1).
    pub async fn history(&self, limit: u32) -> Result<Vec<Record>> {
        self.app.release().history(Some(self.env.name.as_str()), limit).await
    }

    /// [`Env::history`] with only the records of one outcome.
    pub async fn history_of(&self, limit: u32, outcome: Outcome) -> Result<Vec<Record>> {
        self.app.release().history_of(Some(self.env.name.as_str()), limit, Some(outcome)).await
    }

    /// The lock's holder and the commands waiting for it, in the order they will run.
    pub async fn queue(&self) -> Result<QueueView> {
        let mut views = self.app.release().queue(Some(self.env.name.as_str())).await?;
        views.pop().ok_or_else(|| Internal::Invariant { what: format!("no queue for env {}", self.env.name) }.into())
    }

    /// Breaks the environment's lock when its holder stopped renewing it or is provably gone; a live lock is
    /// refused (lock-held, exit 5) unless `force`.
    pub async fn unlock(&self, force: bool) -> Result<UnlockReport> {
        self.app.release().unlock(self.env.name.as_str(), force).await
    }

    /// Its live commit, candidate and every promotion gate with its state (`release plan --env`).
    pub async fn gates(&self) -> Result<crate::observe::gates::EnvGates> {
        let mut v = self.app.release().plan_gates(Some(self.env.name.as_str())).await?;
        v.pop().ok_or_else(|| Internal::Invariant { what: format!("no gates for env {}", self.env.name) }.into())
    }

    /// The session's actor approves `commit` for this environment (`approvals`); the same actor counts once.
    pub async fn approve(&self, commit: impl AsCommit, note: Option<&str>) -> Result<crate::ops::gates::GateReport> {
        self.app.release().approve(self.env.name.as_str(), &commit.as_commit()?, note).await
    }

    /// Freezes the environment: promote, switch and rollouts are refused (exit 4) until [`Env::unfreeze`] or
    /// `until`; rollback is not.
    pub async fn freeze(&self, reason: &str, until: Option<crate::model::clock::Timestamp>) -> Result<crate::ops::gates::GateReport> {
        self.app.release().freeze(self.env.name.as_str(), reason, until).await
    }

    /// Ends the environment's freeze.
    pub async fn unfreeze(&self) -> Result<crate::ops::gates::GateReport> {
        self.app.release().unfreeze(self.env.name.as_str()).await
    }

    /// A test event (action [`TEST_ACTION`], kind `started`) to every sink of `[notify]` at once, whatever its
    /// `on`: one attempt each, bounded like a deploy's; nothing is deployed, locked or recorded.
    pub async fn test_sinks(&self) -> Result<(crate::Event, Vec<SinkTrial>)> {
        use crate::engine::delivery::SINK_TIMEOUT;
        use crate::model::event::{Event, EventKind, InstanceCounts};
        let session = self.app.session();
        let pipeline = self.app.pipeline();
        let actor = &session.actor;
        let clusters = self.env.clusters();
        let event = Event {
            event: EventKind::Started,
            step: None,
            at: session.cloud.clock.now(),
            app: pipeline.app.to_string(),
            env: self.env.name.to_string(),
            cluster: (clusters.len() == 1).then(|| clusters[0].name.to_string()),
            action: TEST_ACTION.to_owned(),
            commit: None,
            commit_short: None,
            subject: Some("a test event from `release notify test`: nothing was deployed".to_owned()),
            ami: None,
            from: String::new(),
            to: String::new(),
            actor: actor.name.clone(),
            caller: actor.caller.clone(),
            host: actor.host.clone(),
            release_id: session.new_release_id().to_string(),
            outcome: "started".to_owned(),
            reason: None,
            rolled_back: None,
            seconds: Default::default(),
            instances: InstanceCounts::default(),
            link: pipeline.notify.link.clone(),
            hooks: Vec::new(),
            gates_overridden: None,
        };
        let notifier = session.notifier.clone();
        let tasks: Vec<_> = pipeline
            .notify
            .sinks
            .iter()
            .map(|sink| {
                let (notifier, sink, event) = (notifier.clone(), sink.clone(), event.clone());
                tokio::spawn(async move {
                    let start = std::time::Instant::now();
                    let result = match tokio::time::timeout(SINK_TIMEOUT, notifier.deliver(&sink, &event)).await {
                        Ok(r) => r,
                        Err(_) => Err(Aws::SinkTimeout { within: SINK_TIMEOUT }.into()),
                    };
                    SinkTrial { sink, result, took: start.elapsed() }
                })
            })
            .collect();
        let mut trials = Vec::new();
        for t in tasks {
            trials.push(t.await.map_err(|e| Error::from(Internal::System { what: "a delivery task failed".into(), error: e.to_string() }))?);
        }
        Ok((event, trials))
    }

    /// Where the environment's rollout (a switch in steps) stands.
    pub async fn rollout_status(&self) -> Result<RolloutStatus> {
        self.app.release().rollout_status(self.env.name.as_str()).await
    }

    /// Goes past the hold of the environment's rollout (asking the run that holds it, or resuming it here).
    pub async fn rollout_continue(&self, wait: Wait) -> Result<RequestReport> {
        self.app.release().rollout_continue(self.env.name.as_str(), wait).await
    }

    /// During a rollout held by a live run: asks it to go back and waits until it did; `None` when there is none
    /// (a holder provably gone then has its lock broken, for the [`Env::rollback`] that follows to take over).
    pub async fn rollout_rollback(&self) -> Result<Option<RequestReport>> {
        self.app.release().rollout_rollback(self.env.name.as_str()).await
    }
}
